"""lociseg.export"""

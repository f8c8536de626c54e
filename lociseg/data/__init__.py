"""lociseg.data"""

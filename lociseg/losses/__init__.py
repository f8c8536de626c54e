"""lociseg.losses"""

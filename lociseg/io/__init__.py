"""lociseg.io"""

"""lociseg.predict"""

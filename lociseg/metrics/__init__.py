"""lociseg.metrics"""

"""lociseg.annotate"""

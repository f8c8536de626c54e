"""lociseg.models"""

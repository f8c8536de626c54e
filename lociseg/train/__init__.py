"""lociseg.train"""

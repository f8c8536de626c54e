"""lociseg.synth"""

"""lociseg.losses: LPN, mask, semantic, weak and aux losses."""

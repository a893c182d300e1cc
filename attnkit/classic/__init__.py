"""Part I: attention before deep learning (1950s to 2005)."""

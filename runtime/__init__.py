"""aedge: learned image compression for small CPU devices."""

"""The trained models that ship with aedge (.aem files; see FORMAT.md)."""

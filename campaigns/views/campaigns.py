"""Campaign list, builder, launch controls and numbers."""

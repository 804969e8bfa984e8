"""Read-only links to a conversation (docs/sharing.md): links.py makes,
lists, finds and revokes them; page.py renders one for anyone holding it."""

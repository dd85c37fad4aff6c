"""File-system syscalls: open, stat, directories, links, permissions (fs/open.c, fs/stat.c, fs/namei.c)."""

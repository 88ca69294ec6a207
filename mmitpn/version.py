__version__ = '0.1.0'


def parse_version_info(version_str):
    """'0.1.0rc1' -> (0, 1, 0, 'rc1')."""
    parts = []
    for part in version_str.split('.'):
        if part.isdigit():
            parts.append(int(part))
        else:
            digits = ''.join(c for c in part if c.isdigit())
            suffix = part[len(digits):]
            parts.extend([int(digits), suffix] if digits else [suffix])
    return tuple(parts)


version_info = parse_version_info(__version__)

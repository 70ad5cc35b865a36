"""Writes a benchmark's figures into a markdown file, between its markers."""


def write_block(path, begin, end, lines, heading=""):
    """Replaces the text between `begin` and `end` in `path` with `lines`
    (which include the markers), or appends them, under `heading` if given,
    when the markers are not there yet."""
    block = "\n".join(lines)
    text = open(path).read()
    if begin in text and end in text:
        text = text[: text.index(begin)] + block + text[text.index(end) + len(end):]
    else:
        text += "\n" + heading + block + "\n"
    open(path, "w").write(text)
    print(f"wrote {path}")

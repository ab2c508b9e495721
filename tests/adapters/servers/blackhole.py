"""A "server" that reads stdin and never answers: the client must time out, not hang."""

import sys

for _line in sys.stdin:
    pass

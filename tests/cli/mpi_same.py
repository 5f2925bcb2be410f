#!/usr/bin/env python3
"""mpi_same.py A B [KEY...]: exit 0 when two safetensors files are the same
bytes except for the value of the metadata "seconds" (a run's compute time,
which differs between any two runs) and of any KEY given: the header text
equal once those values are blanked, and the data sections equal byte for
byte."""
import re
import struct
import sys


def split(path):
    with open(path, "rb") as f:
        b = f.read()
    (n,) = struct.unpack("<Q", b[:8])
    hdr = b[8:8 + n].decode().rstrip(" ")
    for key in ["seconds"] + sys.argv[3:]:
        hdr = re.sub(r'"%s":"[^"]*"' % re.escape(key), '"%s":""' % key, hdr)
    return hdr, b[8 + n:]


ha, da = split(sys.argv[1])
hb, db = split(sys.argv[2])
if ha != hb:
    sys.exit("headers differ:\n%s\n%s" % (ha, hb))
if da != db:
    i = next(i for i in range(min(len(da), len(db))) if da[i] != db[i]) \
        if len(da) == len(db) else -1
    sys.exit("data sections differ (%d and %d bytes, first at %d)"
             % (len(da), len(db), i))

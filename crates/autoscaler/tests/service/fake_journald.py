"""A stand-in for systemd-journald inside the test sandbox's private /run/systemd.

It binds the journal's two sockets: the stream socket the manager connects a service's
stdout/stderr to (which is what makes systemd set JOURNAL_STREAM), and the datagram socket
of the native protocol, where structured records arrive. Each datagram is decoded into
NAME=value lines and appended to the file named by argv[1], followed by a `--` line; argv[2]
is created once both sockets listen. Streams are read and dropped, so writers never block.
"""
import os
import socket
import sys
import threading

JOURNAL = "/run/systemd/journal"


def decode(datagram):
    """The native protocol: `NAME=value\n`, or `NAME\n` + 64-bit LE length + value + `\n`."""
    fields, i = [], 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            fields.append(line)
            i = nl + 1
        else:
            n = int.from_bytes(datagram[nl + 1 : nl + 9], "little")
            fields.append(line + b"=" + datagram[nl + 9 : nl + 9 + n])
            i = nl + 9 + n + 1
    return b"\n".join(fields)


def drain(conn):
    while conn.recv(65536):
        pass


def accept(stream):
    while True:
        conn, _ = stream.accept()
        threading.Thread(target=drain, args=(conn,), daemon=True).start()


def main():
    out = open(sys.argv[1], "ab", buffering=0)
    os.makedirs(JOURNAL, exist_ok=True)
    for name in ("socket", "stdout"):
        try:
            os.unlink(os.path.join(JOURNAL, name))
        except FileNotFoundError:
            pass
    datagrams = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    datagrams.bind(os.path.join(JOURNAL, "socket"))
    stream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stream.bind(os.path.join(JOURNAL, "stdout"))
    stream.listen(16)
    threading.Thread(target=accept, args=(stream,), daemon=True).start()
    open(sys.argv[2], "w").close()
    while True:
        out.write(decode(datagrams.recv(1 << 20)) + b"\n--\n")


main()

"""BUG: a select() room with non-blocking sockets that ignores what send() could not send.

Symptom a tester sees: perfect while everyone reads as fast as the others write (every
paced scenario passes). Once one client reads slower, the messages it should get go
missing (LOST fan-out deliveries, named by sender, message and receiver) and some arrive
cut in half (GARBLED), while the other clients get everything.
Why: on a non-blocking socket, send() sends only what fits in the kernel's buffer for
that client and returns how much that was; when the buffer is full it raises
BlockingIOError. This relay neither looks at the count nor keeps the rest, so every
byte that did not fit is dropped. A correct relay queues the rest per client and sends
it when select() says the socket is writable (or uses blocking sockets and sendall()).

Usage: python3 broadcast_bug_ignores_short_send.py PORT   (otherwise like broadcast_server.py)
"""
import select
import socket
import sys

HOST = "127.0.0.1"


def main():
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, int(sys.argv[1])))
    server.listen()
    server.setblocking(False)
    clients = []
    print(f"Broadcast server listening on {HOST}:{sys.argv[1]}", flush=True)
    while True:
        readable, _, _ = select.select([server] + clients, [], [])
        for sock in readable:
            if sock is server:
                conn, addr = server.accept()
                conn.setblocking(False)
                clients.append(conn)
                continue
            try:
                data = sock.recv(1024)
            except OSError:
                data = b""
            if not data:
                clients.remove(sock)
                sock.close()
                continue
            for other in clients:
                if other is not sock:
                    try:
                        other.send(data)  # BUG: a short send drops the rest
                    except BlockingIOError:
                        pass  # BUG: a full buffer drops the whole chunk
                    except OSError:
                        pass


if __name__ == "__main__":
    main()

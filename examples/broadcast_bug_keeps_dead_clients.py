"""BUG: never removes a client that disconnected; relaying to it kills the sender's thread.

Symptom a tester sees: all is well until the first client leaves. After that, the
next message of each remaining sender reaches only the clients listed before the
departed one (or nobody), and every later message of that sender is never
delivered at all (MISSING fan-out deliveries), although its connection stays open.
Why: the closed socket stays in the list, sendall() on it raises OSError (Bad file
descriptor), and nothing catches it, so the sender's handler thread dies (traceback
on stderr). Note: a readiness probe that connects and closes is already "a client
that left", so after such a probe no message is ever relayed to anyone.

Usage: python3 broadcast_bug_keeps_dead_clients.py PORT   (otherwise like broadcast_server.py)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"

clients = []
clients_lock = threading.Lock()


def broadcast(data, sender):
    with clients_lock:
        for client in clients:
            if client is not sender:
                client.sendall(data)  # raises for a client that has left


def handle(conn, addr):
    while True:
        try:
            data = conn.recv(1024)
        except ConnectionResetError:
            break
        if not data:
            break
        broadcast(data, conn)  # an error in here is not caught: the thread dies
    conn.close()  # BUG: closed, but still in `clients`
    print("Left:", addr, flush=True)


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Broadcast server listening on {HOST}:{port}", flush=True)
    while True:
        conn, addr = server.accept()
        with clients_lock:
            clients.append(conn)
        print("Joined:", addr, flush=True)
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()

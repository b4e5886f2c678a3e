"""BUG: each client's outgoing messages wait in a LifoQueue, so bursts go out newest first.

Symptom a tester sees: while the room is quiet everything looks right; as soon as
messages arrive faster than a client's writer thread sends them, they queue up and
leave in reverse order: a member reads message 7 of a sender before its message 6
(OUT-OF-ORDER deliveries, named by member, sender and message). Why: queue.LifoQueue
is a stack; an outbox must be first in, first out (queue.Queue).

Usage: python3 broadcast_bug_lifo_outbox.py PORT   (otherwise like broadcast_server.py)
"""
import queue
import socket
import sys
import threading

HOST = "127.0.0.1"

outboxes = {}  # socket -> its queue of chunks to send
clients_lock = threading.Lock()


def writer(conn, outbox):
    while True:
        data = outbox.get()
        if data is None:
            break
        try:
            conn.sendall(data)
        except OSError:
            break


def handle(conn, addr):
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            with clients_lock:
                for client, outbox in outboxes.items():
                    if client is not conn:
                        outbox.put(data)
    except OSError as e:
        print("Client", addr, "error:", e, flush=True)
    finally:
        with clients_lock:
            outbox = outboxes.pop(conn, None)
        if outbox is not None:
            outbox.put(None)
        conn.close()
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
        outbox = queue.LifoQueue()  # BUG: last in, first out
        with clients_lock:
            outboxes[conn] = outbox
        print("Joined:", addr, flush=True)
        threading.Thread(target=writer, args=(conn, outbox), daemon=True).start()
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()

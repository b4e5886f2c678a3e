"""Lab 5: multi-client broadcast chat server (a chat room).

Usage: python3 broadcast_server.py PORT

Keeps a list of connected clients and runs one thread per client. Every chunk a
client sends (recv(1024)) is relayed unchanged, with no prefix, to every OTHER
connected client, never back to the sender. A client that disconnects, or whose
send fails, is removed from the list.

The list is guarded by a lock that is also held while relaying, so chunks from two
senders never interleave inside one receiver's stream. (Consequence of this classic
design: a client that stops reading eventually stalls the whole room.)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"

clients = []  # sockets of the connected clients
clients_lock = threading.Lock()


def broadcast(data, sender):
    with clients_lock:
        for client in clients[:]:
            if client is sender:
                continue
            try:
                client.sendall(data)
            except OSError:
                # Drop it; shutdown() wakes its thread, which then closes the socket.
                clients.remove(client)
                try:
                    client.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass


def handle(conn, addr):
    try:
        while True:
            data = conn.recv(1024)
            if not data:
                break
            broadcast(data, conn)
    except OSError as e:
        print("Client", addr, "error:", e, flush=True)
    finally:
        with clients_lock:
            if conn in clients:
                clients.remove(conn)
        conn.close()
        print("Left:", addr, flush=True)


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 broadcast_server.py PORT")
    port = int(sys.argv[1])

    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    print(f"Broadcast server listening on {HOST}:{port}", flush=True)

    while True:
        conn, addr = server.accept()
        with clients_lock:
            clients.append(conn)  # in the room from now on
        print("Joined:", addr, flush=True)
        threading.Thread(target=handle, args=(conn, addr), daemon=True).start()


if __name__ == "__main__":
    main()

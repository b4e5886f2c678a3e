"""BUG: prunes departed clients inside the relay loop, removing from the list it iterates.

Symptom a tester sees: all is well until a member leaves. Then, when a relay finds
the departed client's socket dead and removes it, the loop skips the client right
after it in the list: that member never receives the message (LOST deliveries,
named by member and message). Why: `clients.remove(c)` while `for c in clients`
shifts the rest of the list one place left under the iterator. (The handler also
leaves departed clients in the list, trusting the relay loop to prune them.)

Usage: python3 broadcast_bug_prunes_while_iterating.py PORT   (otherwise like broadcast_server.py)
"""
import socket
import sys
import threading

HOST = "127.0.0.1"

clients = []
clients_lock = threading.Lock()


def broadcast(data, sender):
    with clients_lock:
        for client in clients:  # BUG: iterates the list it may shrink
            if client is sender:
                continue
            try:
                client.sendall(data)
            except OSError:
                clients.remove(client)  # the next client is skipped


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
        try:
            conn.shutdown(socket.SHUT_RDWR)  # left in `clients`: the relay loop prunes it
        except OSError:
            pass
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

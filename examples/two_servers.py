"""Lab 4: two independent echo servers (e.g. ports 6000 and 6001).

Usage: python3 two_servers.py PORT1 PORT2     (both servers, one thread each)
       python3 two_servers.py PORT            (just one, e.g. to run each in its own process)

Each server is an iterative echo server of its own: it replies with exactly the
bytes it received (a plain echo), and prints "Server 1: ..." / "Server 2: ..." for
its connections, so the two are told apart by port and by their log lines. Both
ports are bound before either server starts, so a busy port stops the program at
once. The servers share nothing: one server's client never delays the other.
"""
import socket
import sys
import threading

HOST = "127.0.0.1"


def open_server(port):
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind((HOST, port))
    server.listen()
    return server


def serve(name, server):
    print(f"{name} listening on {HOST}:{server.getsockname()[1]}", flush=True)
    while True:
        conn, addr = server.accept()
        print(f"{name}: connected by {addr}", flush=True)
        with conn:
            try:
                while True:
                    data = conn.recv(1024)
                    if not data:
                        break
                    conn.sendall(data)
            except OSError as e:
                print(f"{name}: client error: {e}", flush=True)
        print(f"{name}: disconnected {addr}", flush=True)


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python3 two_servers.py PORT1 [PORT2]")
    servers = [open_server(int(port)) for port in sys.argv[1:]]

    threads = []
    for number, server in enumerate(servers, start=1):
        t = threading.Thread(target=serve, args=(f"Server {number}", server))
        t.start()
        threads.append(t)
    for t in threads:
        t.join()


if __name__ == "__main__":
    main()

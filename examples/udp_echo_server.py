"""UDP echo server: every datagram back to the address it came from.

Usage: python3 udp_echo_server.py PORT

No connections and no accept(): one socket receives datagrams from every client, and
recvfrom() says who sent each one. The buffer is 65,507 bytes, the largest UDP payload,
so no datagram is cut short. UDP guarantees nothing: a datagram that arrives while the
socket's receive buffer is full is simply dropped by the kernel.
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: python3 udp_echo_server.py PORT")
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((HOST, port))
    print(f"UDP echo server on {HOST}:{port}", flush=True)
    while True:
        data, addr = server.recvfrom(65507)
        server.sendto(data, addr)


if __name__ == "__main__":
    main()

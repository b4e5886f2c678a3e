"""BUG: reads each datagram with recvfrom(1024), so larger datagrams come back cut short.

Symptom a tester sees: datagrams up to 1024 bytes are echoed fine; every larger one comes
back as its first 1024 bytes (TRUNCATED: "datagram 3 came back with 1024 of its 3000
bytes"). Why: with UDP, recvfrom(n) returns at most n bytes of ONE datagram and the
kernel discards the rest of it; unlike TCP there is no "next recv" that gets the rest.

Usage: python3 udp_echo_bug_recvfrom_1024.py PORT   (otherwise like udp_echo_server.py)
"""
import socket
import sys

HOST = "127.0.0.1"


def main():
    port = int(sys.argv[1])
    server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    server.bind((HOST, port))
    print(f"UDP echo server on {HOST}:{port}", flush=True)
    while True:
        data, addr = server.recvfrom(1024)  # BUG: the rest of a larger datagram is lost
        server.sendto(data, addr)


if __name__ == "__main__":
    main()

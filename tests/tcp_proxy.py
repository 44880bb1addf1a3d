"""A TCP proxy on loopback that can slow or freeze its connections. Frozen: the bytes stop
flowing, the sockets stay open, as behind a load balancer that lost its state (new
connections pass). Slow: every answer waits `delay` seconds."""

import socket
import threading
import time


class FreezingProxy:
    def __init__(self, target_port: int) -> None:
        self._target = ("127.0.0.1", target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._frozen: set[socket.socket] = set()  # sockets whose bytes are held, not forwarded
        self._open: set[socket.socket] = set()
        self.delay = 0.0  # seconds added before every chunk the upstream sends back
        self.delayed = 0  # answers being held back now: a request is in flight
        threading.Thread(target=self._accept, daemon=True).start()

    def freeze_open_connections(self) -> int:
        """Every connection open now goes silent both ways; returns how many."""
        with self._lock:
            self._frozen |= self._open
            return len(self._open) // 2

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._open:
                sock.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            with self._lock:
                self._open |= {client, upstream}
            for a, b, slow in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pipe, args=(a, b, slow), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket, slow: bool) -> None:
        try:
            while data := source.recv(65536):
                with self._lock:
                    frozen = source in self._frozen
                if slow and self.delay:
                    with self._lock:
                        self.delayed += 1
                    time.sleep(self.delay)
                    with self._lock:
                        self.delayed -= 1
                if not frozen:
                    sink.sendall(data)
        except OSError:
            pass
        finally:
            with self._lock:
                silent = source in self._frozen
            if not silent:  # a frozen connection is never closed by us: that is the fault
                for sock in (source, sink):
                    sock.close()
                with self._lock:
                    self._open -= {source, sink}

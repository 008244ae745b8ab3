"""A real gRPC server and client (grpcio, the reference implementation) for tests/e2e/gateway_grpcio.rs.

Messages are raw bytes (no protobuf: grpcio's generic handlers with identity serializers), so the
test needs only `grpcio`.

  grpcio_echo.py serve NAME
      Serves echo.Echo on 127.0.0.1 (a free port), prints the port, and stops when standard
      input closes. Methods: Say (unary), Count (server streaming), Chat (bidirectional),
      Upload (client streaming); each answer names the server, the method and the `x-tier`
      metadata it saw.
  grpcio_echo.py call ADDRESS AUTHORITY
      Calls through ADDRESS (h2c) with that authority and prints the answers as JSON.
"""

import json
import sys
from concurrent import futures

import grpc


def serve(name):
    def tier(context):
        return dict(context.invocation_metadata()).get("x-tier", "-")

    def say(request, context):
        return f"{name}|Say|{tier(context)}|{request.decode()}".encode()

    def count(request, context):
        for i in range(int(request.decode())):
            yield f"{name}|Count|{i}".encode()

    def chat(requests, context):
        for message in requests:
            yield f"{name}|Chat|{message.decode()}".encode()

    def upload(requests, context):
        return f"{name}|Upload|{','.join(m.decode() for m in requests)}".encode()

    handler = grpc.method_handlers_generic_handler(
        "echo.Echo",
        {
            "Say": grpc.unary_unary_rpc_method_handler(say),
            "Count": grpc.unary_stream_rpc_method_handler(count),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
            "Upload": grpc.stream_unary_rpc_method_handler(upload),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdin.read()
    server.stop(grace=None)


def call(address, authority):
    options = [("grpc.default_authority", authority)]
    out = {}
    with grpc.insecure_channel(address, options=options) as channel:
        grpc.channel_ready_future(channel).result(timeout=10)
        say = channel.unary_unary("/echo.Echo/Say")
        out["say"] = say(b"ping", timeout=10).decode()
        out["say_gold"] = say(b"ping", metadata=(("x-tier", "gold"),), timeout=10).decode()
        count = channel.unary_stream("/echo.Echo/Count")
        out["count"] = [m.decode() for m in count(b"5", timeout=10)]
        chat = channel.stream_stream("/echo.Echo/Chat")
        out["chat"] = [m.decode() for m in chat(iter([b"a", b"b", b"c"]), timeout=10)]
        upload = channel.stream_unary("/echo.Echo/Upload")
        out["upload"] = upload(iter([b"x", b"y", b"z"]), timeout=10).decode()
        # A large streamed answer: flow control end to end (1,000 messages).
        out["count_many"] = sum(1 for _ in count(b"1000", timeout=20))
        for key, path in [("unrouted", "/echo.Other/Say"), ("missing_backend", "/echo.Missing/Say")]:
            try:
                channel.unary_unary(path)(b"ping", timeout=10)
                out[key] = "OK"
            except grpc.RpcError as error:
                out[key] = error.code().name
    print(json.dumps(out))


if __name__ == "__main__":
    if sys.argv[1] == "serve":
        serve(sys.argv[2])
    elif sys.argv[1] == "call":
        call(sys.argv[2], sys.argv[3])
    else:
        sys.exit(f"unknown command {sys.argv[1]!r}")

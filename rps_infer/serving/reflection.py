"""gRPC server reflection, both ``grpc.reflection.v1`` (what grpcurl and Postman try first) and
``grpc.reflection.v1alpha`` (what older tools speak).

grpcio-reflection ships only v1alpha. The v1 protocol has the very same messages under another
package name, so the v1 method is served by the v1alpha servicer (the bytes on the wire are
identical), and the v1 file descriptor (v1alpha's, renamed) is added to the descriptor pool so
a client can also describe the v1 service itself.
"""

from __future__ import annotations

V1_SERVICE = "grpc.reflection.v1.ServerReflection"


def _register_v1_descriptor() -> None:
    """Put ``grpc/reflection/v1/reflection.proto`` in the default pool (once)."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from grpc_reflection.v1alpha import reflection_pb2

    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(V1_SERVICE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    old = proto.package
    proto.name, proto.package = "grpc/reflection/v1/reflection.proto", "grpc.reflection.v1"
    for message in proto.message_type:
        for field in message.field:
            if field.type_name.startswith(f".{old}."):
                field.type_name = field.type_name.replace(f".{old}.", ".grpc.reflection.v1.", 1)
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(f".{old}.", ".grpc.reflection.v1.", 1)
            method.output_type = method.output_type.replace(f".{old}.", ".grpc.reflection.v1.", 1)
    pool.Add(proto)


def enable(server, service_names: tuple[str, ...]) -> None:
    """Serve reflection v1 and v1alpha for ``service_names`` (and the reflection services)."""
    import grpc
    from grpc_reflection.v1alpha import reflection, reflection_pb2

    _register_v1_descriptor()
    names = (*service_names, reflection.SERVICE_NAME, V1_SERVICE)
    reflection.enable_server_reflection(names, server)
    servicer = reflection.ReflectionServicer(names)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo, request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(V1_SERVICE,
                                                                          {"ServerReflectionInfo": handler}),))

"""gRPC server reflection (issue 3): what `grpcurl list` / `grpcurl describe` use, checked with grpcio-reflection's
client (v1alpha, the version DTM registers) and with raw streams on v1 (same wire format, newer clients try it first).
"""

import queue
import threading

import grpc
import pytest
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection_pb2 as rpb
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase

import grpc_harness as h

V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
V1ALPHA = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
NOT_FOUND = grpc.StatusCode.NOT_FOUND.value[0]

SERVICES = ["dtmgimp.Dtm", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection"]


def _stream(channel, path):
    return channel.stream_stream(path, request_serializer=rpb.ServerReflectionRequest.SerializeToString,
                                 response_deserializer=rpb.ServerReflectionResponse.FromString)


def test_list_services_like_grpcurl_list(dtm_channel):
    db = ProtoReflectionDescriptorDatabase(dtm_channel)
    assert sorted(db.get_services()) == SERVICES


def test_describe_dtm_service_resolves_every_method_and_import(dtm_channel):
    pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(dtm_channel))
    service = pool.FindServiceByName("dtmgimp.Dtm")
    methods = {m.name: (m.input_type.full_name, m.output_type.full_name) for m in service.methods}
    assert methods == {
        "NewGid": ("google.protobuf.Empty", "dtmgimp.DtmGidReply"),
        "Submit": ("dtmgimp.DtmRequest", "google.protobuf.Empty"),
        "Prepare": ("dtmgimp.DtmRequest", "google.protobuf.Empty"),
        "Abort": ("dtmgimp.DtmRequest", "google.protobuf.Empty"),
        "RegisterBranch": ("dtmgimp.DtmBranchRequest", "google.protobuf.Empty"),
        "PrepareWorkflow": ("dtmgimp.DtmRequest", "dtmgimp.DtmProgressesReply"),
        "Subscribe": ("dtmgimp.DtmTopicRequest", "google.protobuf.Empty"),
        "Unsubscribe": ("dtmgimp.DtmTopicRequest", "google.protobuf.Empty"),
        "DeleteTopic": ("dtmgimp.DtmTopicRequest", "google.protobuf.Empty"),
    }
    request = pool.FindMessageTypeByName("dtmgimp.DtmRequest")
    fields = {f.name: f.number for f in request.fields}
    assert fields["Gid"] == 1 and fields["TransType"] == 2 and fields["Steps"] == 7 and fields["ReqExtra"] == 8, fields
    # nested map-entry types and symbols of the other served files resolve too
    assert pool.FindMessageTypeByName("dtmgimp.DtmTransOptions").fields_by_name["BranchHeaders"].message_type
    assert pool.FindMethodByName("grpc.health.v1.Health.Check").output_type.full_name == "grpc.health.v1.HealthCheckResponse"


def test_answers_each_request_before_the_client_half_closes(dtm_channel):
    """grpcurl keeps one stream open and waits for each answer before sending the next request."""
    requests = queue.Queue()

    def feed():
        while True:
            item = requests.get()
            if item is None:
                return
            yield item

    call = _stream(dtm_channel, V1)(feed(), timeout=h.CALL_TIMEOUT)
    responses = iter(call)
    requests.put(rpb.ServerReflectionRequest(host="h1", list_services="*"))
    first = next(responses)
    assert first.valid_host == "h1" and first.original_request.list_services == "*"
    assert sorted(s.name for s in first.list_services_response.service) == SERVICES

    requests.put(rpb.ServerReflectionRequest(file_containing_symbol="dtmgimp.Dtm.Submit"))
    second = next(responses)
    files = second.file_descriptor_response.file_descriptor_proto
    assert len(files) == 2  # dtmgimp.proto and the empty.proto it imports
    assert b"dtmgimp.proto" in files[0] and b"google/protobuf/empty.proto" in files[1]

    requests.put(rpb.ServerReflectionRequest(file_by_filename="no/such.proto"))
    third = next(responses)
    assert third.error_response.error_code == NOT_FOUND
    assert "no/such.proto" in third.error_response.error_message

    requests.put(None)  # half-close: the call ends OK after the answers
    assert list(responses) == []
    assert call.code() == grpc.StatusCode.OK


@pytest.mark.parametrize("path", [V1, V1ALPHA])
def test_unknown_symbol_and_extensions_are_not_found_in_band(dtm_channel, path):
    answers = list(_stream(dtm_channel, path)(iter([
        rpb.ServerReflectionRequest(file_containing_symbol="nope.Nothing"),
        rpb.ServerReflectionRequest(file_containing_extension=rpb.ExtensionRequest(containing_type="dtmgimp.DtmRequest",
                                                                                   extension_number=100)),
        rpb.ServerReflectionRequest(all_extension_numbers_of_type="dtmgimp.DtmRequest"),
    ]), timeout=h.CALL_TIMEOUT))
    assert [a.WhichOneof("message_response") for a in answers] == [
        "error_response", "error_response", "all_extension_numbers_response"]
    assert answers[0].error_response.error_code == NOT_FOUND and "nope.Nothing" in answers[0].error_response.error_message
    assert answers[2].all_extension_numbers_response.base_type_name == "dtmgimp.DtmRequest"
    assert list(answers[2].all_extension_numbers_response.extension_number) == []


def test_malformed_request_ends_the_call_and_server_keeps_serving(dtm_channel, dtm_grpc, pb):
    raw = dtm_channel.stream_stream(V1, request_serializer=None, response_deserializer=None)
    with pytest.raises(grpc.RpcError) as err:
        list(raw(iter([b"\xff\xff\xff"]), timeout=h.CALL_TIMEOUT))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ServerReflectionRequest" in err.value.details()
    # an empty request (no query set) is refused the same way
    with pytest.raises(grpc.RpcError) as err:
        list(_stream(dtm_channel, V1)(iter([rpb.ServerReflectionRequest(host="x")]), timeout=h.CALL_TIMEOUT))
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert len(dtm_grpc.NewGid(pb.Empty()).Gid) == 22


def test_many_concurrent_reflection_streams(dtm_channel):
    errors = []

    def one():
        try:
            answers = list(_stream(dtm_channel, V1ALPHA)(
                iter([rpb.ServerReflectionRequest(list_services="")] * 5), timeout=h.CALL_TIMEOUT))
            assert len(answers) == 5 and all(len(a.list_services_response.service) == 4 for a in answers)
        except Exception as e:  # collected so the main thread fails with the cause
            errors.append(e)

    threads = [threading.Thread(target=one) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

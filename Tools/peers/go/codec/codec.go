// Package codec registers a gRPC "proto" codec on google.golang.org/protobuf (APIv2).
//
// Debian bookworm's grpc-go (1.33) marshals with github.com/golang/protobuf 1.3, which predates the APIv2
// messages protoc-gen-go 1.28 generates; this codec marshals them with APIv2 itself, as newer grpc-go does.
// Importing the package (for its side effect) replaces the default codec in the whole program.
package codec

import (
	"fmt"

	"google.golang.org/grpc/encoding"
	"google.golang.org/protobuf/proto"
)

type protoCodec struct{}

func (protoCodec) Name() string { return "proto" }

func (protoCodec) Marshal(v interface{}) ([]byte, error) {
	m, ok := v.(proto.Message)
	if !ok {
		return nil, fmt.Errorf("codec: %T is not an APIv2 proto.Message", v)
	}
	return proto.Marshal(m)
}

func (protoCodec) Unmarshal(data []byte, v interface{}) error {
	m, ok := v.(proto.Message)
	if !ok {
		return fmt.Errorf("codec: %T is not an APIv2 proto.Message", v)
	}
	return proto.Unmarshal(data, m)
}

func init() { encoding.RegisterCodec(protoCodec{}) }

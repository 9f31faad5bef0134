// busi: a gRPC branch service as a Go user of DTM writes it (grpc-go), for the benchmark.
//
// It serves busi.Busi (Protos/busi.proto): TransOut and TransIn are the saga's actions, TransOutRevert and
// TransInRevert their compensations. Every method answers success, or gRPC ABORTED "FAILURE" (DTM's failure
// answer) when the request's TransOutResult/TransInResult asks for it, as DTM's own test service does. It counts
// calls and serves the counts as JSON on -stats (GET /stats), so a load generator can tell when its sagas'
// last actions (TransIn) have arrived.
//
// Usage: busi -grpc 127.0.0.1:PORT -stats 127.0.0.1:PORT
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"sync/atomic"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	_ "peers/codec"
	"peers/pb/busi"
)

// Stats are the calls seen since start; TransIn is the saga's last action.
type Stats struct {
	Calls         int64 `json:"calls"`
	TransIn       int64 `json:"trans_in"`
	Compensations int64 `json:"compensations"`
	Failed        int64 `json:"failed"`
}

type server struct {
	busi.UnimplementedBusiServer
	calls, transIn, compensations, failed int64
}

func (s *server) answer(result string) (*emptypb.Empty, error) {
	atomic.AddInt64(&s.calls, 1)
	if result == "FAILURE" {
		atomic.AddInt64(&s.failed, 1)
		return nil, status.Error(codes.Aborted, "FAILURE")
	}
	return &emptypb.Empty{}, nil
}

func (s *server) TransOut(_ context.Context, r *busi.ReqGrpc) (*emptypb.Empty, error) {
	return s.answer(r.TransOutResult)
}

func (s *server) TransIn(_ context.Context, r *busi.ReqGrpc) (*emptypb.Empty, error) {
	atomic.AddInt64(&s.transIn, 1)
	return s.answer(r.TransInResult)
}

func (s *server) TransOutRevert(context.Context, *busi.ReqGrpc) (*emptypb.Empty, error) {
	atomic.AddInt64(&s.compensations, 1)
	return s.answer("")
}

func (s *server) TransInRevert(context.Context, *busi.ReqGrpc) (*emptypb.Empty, error) {
	atomic.AddInt64(&s.compensations, 1)
	return s.answer("")
}

func (s *server) stats() Stats {
	return Stats{
		Calls: atomic.LoadInt64(&s.calls), TransIn: atomic.LoadInt64(&s.transIn),
		Compensations: atomic.LoadInt64(&s.compensations), Failed: atomic.LoadInt64(&s.failed),
	}
}

func main() {
	grpcAddr := flag.String("grpc", "127.0.0.1:0", "gRPC listen address")
	statsAddr := flag.String("stats", "127.0.0.1:0", "HTTP address of GET /stats (JSON call counts)")
	flag.Parse()

	s := &server{}
	lis, err := net.Listen("tcp", *grpcAddr)
	if err != nil {
		log.Fatalf("busi: %v", err)
	}
	statsLis, err := net.Listen("tcp", *statsAddr)
	if err != nil {
		log.Fatalf("busi: %v", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/stats", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.stats())
	})
	go func() { log.Fatal(http.Serve(statsLis, mux)) }()

	g := grpc.NewServer()
	busi.RegisterBusiServer(g, s)
	fmt.Printf("busi: gRPC %s, stats http://%s/stats\n", lis.Addr(), statsLis.Addr())
	log.Fatal(g.Serve(lis))
}

// submit: a Go load generator for DTM-compatible coordinators, as a Go user's client submits sagas (grpc-go).
//
// It submits two-branch gRPC sagas (dtmgimp.Dtm/Submit, branches busi.Busi/TransOut and TransIn on the Go busi
// service, with their Revert compensations) either closed loop (-clients goroutines, each submitting its next saga
// when the previous submit returned) or open loop (-rate sagas/s on a fixed schedule, latency from each saga's due
// time, at most -clients submits in flight). After the load it waits (at most -drain seconds) until the branch
// service has seen as many TransIn calls as submits were accepted, then prints a report and, with -row, one
// tab-separated line in dtm-bench's ROW format for scripts/bench.sh.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	_ "peers/codec"
	"peers/pb/busi"
	"peers/pb/dtmgimp"
)

type options struct {
	target, httpTarget, busiAddr, busiStats, label, pids string
	rate, seconds, drain                                 float64
	clients, verify                                      int
	waitResult, row                                      bool
}

func main() {
	var o options
	flag.StringVar(&o.target, "target", "127.0.0.1:36790", "coordinator gRPC address; several, comma-separated, share the submits in turn")
	flag.StringVar(&o.httpTarget, "http-target", "", "coordinator HTTP address, for the store check (GET /api/dtmsvr/query)")
	flag.StringVar(&o.busiAddr, "busi", "127.0.0.1:58081", "gRPC address of the busi service (the branch URLs)")
	flag.StringVar(&o.busiStats, "busi-stats", "", "URL of the busi service's GET /stats, to count completed sagas")
	flag.Float64Var(&o.rate, "rate", 0, "open loop at this many sagas/s (0: closed loop)")
	flag.IntVar(&o.clients, "clients", 64, "closed loop: concurrent clients; open loop: most submits in flight")
	flag.Float64Var(&o.seconds, "seconds", 10, "seconds of load")
	flag.Float64Var(&o.drain, "drain", 5, "seconds to wait after the load for sagas still in flight")
	flag.BoolVar(&o.waitResult, "wait-result", false, "submit with wait_result")
	flag.StringVar(&o.pids, "pid", "", "coordinator PIDs (comma-separated), to read their CPU time from /proc")
	flag.IntVar(&o.verify, "verify", 20, "gids to look up in the coordinator's store afterwards")
	flag.StringVar(&o.label, "label", "", "label of the run in the report")
	flag.BoolVar(&o.row, "row", false, "also print one tab-separated ROW line (scripts/bench.sh)")
	flag.Parse()
	if o.clients <= 0 || o.seconds <= 0 || o.rate < 0 {
		fmt.Fprintln(os.Stderr, "submit: -clients and -seconds must be positive, -rate >= 0")
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "submit:", err)
		os.Exit(1)
	}
}

// sagaRequest builds the DtmRequest of one saga as dtmgrpc's saga does: the steps as JSON text, the branch
// payloads as encoded busi.ReqGrpc. The steps and payloads are built once and shared (marshalling only reads them).
func sagaRequest(busiAddr string, waitResult bool) (func(gid string) *dtmgimp.DtmRequest, error) {
	steps, err := json.Marshal([]map[string]string{
		{"action": busiAddr + "/busi.Busi/TransOut", "compensate": busiAddr + "/busi.Busi/TransOutRevert"},
		{"action": busiAddr + "/busi.Busi/TransIn", "compensate": busiAddr + "/busi.Busi/TransInRevert"},
	})
	if err != nil {
		return nil, err
	}
	payload, err := proto.Marshal(&busi.ReqGrpc{Amount: 30})
	if err != nil {
		return nil, err
	}
	payloads, stepsText := [][]byte{payload, payload}, string(steps)
	return func(gid string) *dtmgimp.DtmRequest {
		return &dtmgimp.DtmRequest{
			Gid:          gid,
			TransType:    "saga",
			TransOptions: &dtmgimp.DtmTransOptions{WaitResult: waitResult},
			Steps:        stepsText,
			BinPayloads:  payloads,
		}
	}, nil
}

type result struct {
	latencies []time.Duration
	accepted  []int
	failures  int
	firstErr  error
}

func (r *result) merge(o *result) {
	r.latencies = append(r.latencies, o.latencies...)
	r.accepted = append(r.accepted, o.accepted...)
	r.failures += o.failures
	if r.firstErr == nil {
		r.firstErr = o.firstErr
	}
}

func run(o options) error {
	var clients []dtmgimp.DtmClient
	for _, target := range strings.Split(o.target, ",") {
		conn, err := grpc.Dial(target, grpc.WithInsecure())
		if err != nil {
			return err
		}
		defer conn.Close()
		clients = append(clients, dtmgimp.NewDtmClient(conn))
	}
	request, err := sagaRequest(o.busiAddr, o.waitResult)
	if err != nil {
		return err
	}
	prefix := "g" + strconv.FormatUint(uint64(rand.New(rand.NewSource(time.Now().UnixNano())).Uint32()), 36) + "-"
	submit := func(seq int) error {
		req := request(prefix + strconv.Itoa(seq))
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_, err := clients[seq%len(clients)].Submit(ctx, req)
		return err
	}

	pids := parsePIDs(o.pids)
	statsBefore, _ := busiStats(o.busiStats)
	cpuBefore, ownBefore, machineBefore := cpuSeconds(pids), ownCPU(), machineTicks()
	start := time.Now()
	end := start.Add(time.Duration(o.seconds * float64(time.Second)))
	var res result
	if o.rate > 0 {
		res = openLoop(submit, o.rate, o.clients, start, end)
	} else {
		res = closedLoop(submit, o.clients, end)
	}
	loadEnd := time.Now()
	if loadEnd.Before(end) {
		loadEnd = end
	}
	window := loadEnd.Sub(start).Seconds()
	statsAtEnd, _ := busiStats(o.busiStats)
	completed := -1
	if o.busiStats != "" {
		drainUntil := time.Now().Add(time.Duration(o.drain * float64(time.Second)))
		for {
			s, err := busiStats(o.busiStats)
			if err == nil {
				completed = int(s.TransIn - statsBefore.TransIn)
			}
			if completed >= len(res.accepted) || time.Now().After(drainUntil) {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	cpuAfter, ownAfter, machineAfter := cpuSeconds(pids), ownCPU(), machineTicks()
	statuses := storeCheck(o.httpTarget, prefix, res.accepted, o.verify)

	label := o.label
	if label == "" {
		label = "go grpc"
		if o.waitResult {
			label += " wait_result"
		}
		if o.rate > 0 {
			label += fmt.Sprintf(" open %.0f/s", o.rate)
		} else {
			label += fmt.Sprintf(" closed c=%d", o.clients)
		}
	}
	sort.Slice(res.latencies, func(i, j int) bool { return res.latencies[i] < res.latencies[j] })
	pct := func(p float64) string {
		if len(res.latencies) == 0 {
			return "-"
		}
		i := int(p / 100 * float64(len(res.latencies)))
		if i >= len(res.latencies) {
			i = len(res.latencies) - 1
		}
		return fmt.Sprintf("%.2f", float64(res.latencies[i].Microseconds())/1000)
	}
	perSaga := func(seconds float64) string {
		if completed <= 0 || seconds < 0 {
			return "-"
		}
		return fmt.Sprintf("%.0f", seconds/float64(completed)*1e6)
	}
	rate, inWindow, missing := "-", "-", "-"
	if completed >= 0 {
		inWindow = strconv.FormatInt(statsAtEnd.TransIn-statsBefore.TransIn, 10)
		rate = fmt.Sprintf("%.0f", float64(statsAtEnd.TransIn-statsBefore.TransIn)/window)
		missing = strconv.Itoa(len(res.accepted) - completed)
	}
	steal := "-"
	if machineAfter.total > machineBefore.total {
		steal = fmt.Sprintf("%.1f", (machineAfter.steal-machineBefore.steal)/(machineAfter.total-machineBefore.total)*100)
	}
	cpu, rss := "-", "-"
	if len(pids) > 0 {
		cpu = perSaga(cpuAfter - cpuBefore)
		rss = strconv.Itoa(residentMiB(pids))
	}
	check := "-"
	if n := sumValues(statuses); n > 0 {
		check = fmt.Sprintf("%d/%d", statuses["succeed"], n)
	}

	fmt.Printf("scenario: %s, %.1f s\n", label, window)
	fmt.Printf("  submitted: %d (%.0f/s), accepted %d, errors %d", len(res.accepted)+res.failures,
		float64(len(res.accepted)+res.failures)/window, len(res.accepted), res.failures)
	if res.firstErr != nil {
		fmt.Printf(" (first: %v)", res.firstErr)
	}
	fmt.Println()
	fmt.Printf("  completed (TransIn reached busi): %s/s in the load window (%s); %d of %d accepted after the drain\n",
		rate, inWindow, completed, len(res.accepted))
	fmt.Printf("  submit latency ms: p50 %s p99 %s p999 %s\n", pct(50), pct(99), pct(99.9))
	fmt.Printf("  coordinator: %s µs CPU per completed saga, %s MiB resident\n", cpu, rss)
	fmt.Printf("  submit (this load generator): %s µs CPU per completed saga\n", perSaga(ownAfter-ownBefore))
	fmt.Printf("  machine: %s %% of CPU time stolen by the hypervisor during the run\n", steal)
	if len(statuses) > 0 {
		fmt.Printf("  store check: %v\n", statuses)
	}
	if o.row {
		fmt.Println(strings.Join([]string{"ROW", label, rate, pct(50), pct(99), pct(99.9), "-", "-", cpu, rss, check,
			missing, steal, strconv.Itoa(completed)}, "\t"))
	}
	return nil
}

func closedLoop(submit func(int) error, clients int, end time.Time) result {
	var next int64 = -1
	parts := make([]result, clients)
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(r *result) {
			defer wg.Done()
			for time.Now().Before(end) {
				seq := int(atomic.AddInt64(&next, 1))
				began := time.Now()
				err := submit(seq)
				r.record(seq, time.Since(began), err)
			}
		}(&parts[c])
	}
	wg.Wait()
	var total result
	for i := range parts {
		total.merge(&parts[i])
	}
	return total
}

func (r *result) record(seq int, took time.Duration, err error) {
	r.latencies = append(r.latencies, took)
	if err != nil {
		r.failures++
		if r.firstErr == nil {
			r.firstErr = err
		}
		return
	}
	r.accepted = append(r.accepted, seq)
}

// openLoop: saga i is due at start + i/rate whatever the coordinator does; the pacer sleeps until the next due
// time (at least 200 µs) and starts every saga due by then; at most inFlight submits are outstanding (a saga
// finding none free waits, its latency still counted from its due time).
func openLoop(submit func(int) error, rate float64, inFlight int, start, end time.Time) result {
	interval := time.Duration(float64(time.Second) / rate)
	slots := make(chan struct{}, inFlight)
	var mu sync.Mutex
	var total result
	var wg sync.WaitGroup
	for seq := 0; ; seq++ {
		due := start.Add(time.Duration(seq) * interval)
		if !due.Before(end) {
			break
		}
		if wait := time.Until(due); wait > 0 {
			if wait < 200*time.Microsecond {
				wait = 200 * time.Microsecond
			}
			time.Sleep(wait)
		}
		slots <- struct{}{}
		wg.Add(1)
		go func(seq int, due time.Time) {
			defer wg.Done()
			err := submit(seq)
			took := time.Since(due)
			<-slots
			mu.Lock()
			total.record(seq, took, err)
			mu.Unlock()
		}(seq, due)
	}
	wg.Wait()
	return total
}

func busiStats(url string) (s struct {
	TransIn int64 `json:"trans_in"`
}, err error) {
	if url == "" {
		return s, fmt.Errorf("no -busi-stats")
	}
	resp, err := http.Get(url)
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	err = json.NewDecoder(resp.Body).Decode(&s)
	return s, err
}

// storeCheck looks up `count` accepted gids, spread over the run, with GET /api/dtmsvr/query.
func storeCheck(httpTarget, prefix string, accepted []int, count int) map[string]int {
	statuses := map[string]int{}
	if httpTarget == "" || len(accepted) == 0 || count <= 0 {
		return statuses
	}
	sorted := append([]int(nil), accepted...)
	sort.Ints(sorted)
	for i := 0; i < count; i++ {
		seq := sorted[i*len(sorted)/count]
		resp, err := http.Get(fmt.Sprintf("http://%s/api/dtmsvr/query?gid=%s%d", httpTarget, prefix, seq))
		if err != nil {
			statuses["error"]++
			continue
		}
		var body struct {
			Transaction *struct {
				Status string `json:"status"`
			} `json:"transaction"`
		}
		if json.NewDecoder(resp.Body).Decode(&body) != nil || body.Transaction == nil {
			statuses["missing"]++
		} else {
			statuses[body.Transaction.Status]++
		}
		resp.Body.Close()
	}
	return statuses
}

func sumValues(m map[string]int) (n int) {
	for _, v := range m {
		n += v
	}
	return n
}

func parsePIDs(s string) (pids []int) {
	for _, f := range strings.Split(s, ",") {
		if p, err := strconv.Atoi(strings.TrimSpace(f)); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	return pids
}

// cpuSeconds: user + system CPU of the processes, from /proc/PID/stat (clock ticks of 1/100 s, Linux's USER_HZ).
func cpuSeconds(pids []int) (total float64) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			continue
		}
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 12 {
			u, _ := strconv.ParseFloat(fields[11], 64)
			k, _ := strconv.ParseFloat(fields[12], 64)
			total += (u + k) / 100
		}
	}
	return total
}

func ownCPU() float64 { return cpuSeconds([]int{os.Getpid()}) }

func residentMiB(pids []int) (mib int) {
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/statm", pid))
		if err != nil {
			continue
		}
		if f := strings.Fields(string(b)); len(f) > 1 {
			pages, _ := strconv.Atoi(f[1])
			mib += pages * os.Getpagesize() / (1 << 20)
		}
	}
	return mib
}

type ticks struct{ total, steal float64 }

// machineTicks: all CPUs' time and the part stolen by the hypervisor, from /proc/stat's first line.
func machineTicks() (t ticks) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return t
	}
	line := strings.SplitN(string(b), "\n", 2)[0]
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return t
	}
	for i := 1; i <= 8; i++ {
		v, _ := strconv.ParseFloat(f[i], 64)
		t.total += v
	}
	t.steal, _ = strconv.ParseFloat(f[8], 64)
	return t
}

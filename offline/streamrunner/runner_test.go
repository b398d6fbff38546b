package streamrunner

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

const fakeStreamARN = "arn:aws:dynamodb:ddblocal:000000000000:table/t/stream/2026-01-01T00:00:00.000"

// fakeStream is one shard whose records can be appended while it is read.
type fakeStream struct {
	mu      sync.Mutex
	records []types.Record
	closed  bool
}

func (f *fakeStream) add(name string, n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for range n {
		seq := strconv.Itoa(1000 + len(f.records))
		f.records = append(f.records, types.Record{
			EventName: types.OperationType(name), EventSource: aws.String("aws:dynamodb"), AwsRegion: aws.String("ddblocal"),
			Dynamodb: &types.StreamRecord{
				SequenceNumber: aws.String(seq), ApproximateCreationDateTime: aws.Time(time.Unix(1775044862, 0)),
				Keys: map[string]types.AttributeValue{"pk": &types.AttributeValueMemberS{Value: "DOMAIN#" + seq + ".example"}},
			},
		})
	}
}

func (f *fakeStream) ListStreams(context.Context, *dynamodbstreams.ListStreamsInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error) {
	return &dynamodbstreams.ListStreamsOutput{Streams: []types.Stream{{StreamArn: aws.String(fakeStreamARN)}}}, nil
}

func (f *fakeStream) DescribeStream(context.Context, *dynamodbstreams.DescribeStreamInput, ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	sh := types.Shard{ShardId: aws.String("shardId-1"), SequenceNumberRange: &types.SequenceNumberRange{StartingSequenceNumber: aws.String("1000")}}
	if f.closed {
		sh.SequenceNumberRange.EndingSequenceNumber = aws.String(strconv.Itoa(999 + len(f.records)))
	}
	return &dynamodbstreams.DescribeStreamOutput{StreamDescription: &types.StreamDescription{Shards: []types.Shard{sh}}}, nil
}

func (f *fakeStream) GetShardIterator(_ context.Context, in *dynamodbstreams.GetShardIteratorInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pos := 0
	switch in.ShardIteratorType {
	case types.ShardIteratorTypeLatest:
		pos = len(f.records)
	case types.ShardIteratorTypeAfterSequenceNumber:
		n, _ := strconv.Atoi(aws.ToString(in.SequenceNumber))
		pos = n - 1000 + 1
	}
	return &dynamodbstreams.GetShardIteratorOutput{ShardIterator: aws.String(strconv.Itoa(pos))}, nil
}

func (f *fakeStream) GetRecords(_ context.Context, in *dynamodbstreams.GetRecordsInput, _ ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pos, _ := strconv.Atoi(aws.ToString(in.ShardIterator))
	end := min(pos+3, len(f.records)) // small pages exercise buffering
	out := &dynamodbstreams.GetRecordsOutput{Records: slices.Clone(f.records[pos:end])}
	if !f.closed || end < len(f.records) {
		out.NextShardIterator = aws.String(strconv.Itoa(end))
	}
	return out, nil
}

type fakeSink struct {
	mu  sync.Mutex
	got []OnFailureRecord
}

func (s *fakeSink) SendFailure(_ context.Context, rec OnFailureRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.got = append(s.got, rec)
	return nil
}

// recorder is a handler that records each invocation's sequence numbers and
// answers with decide.
type recorder struct {
	mu     sync.Mutex
	calls  [][]string
	decide func(call int, seqs []string) (events.DynamoDBEventResponse, error)
}

func (r *recorder) handle(_ context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error) {
	var seqs []string
	for _, rec := range ev.Records {
		seqs = append(seqs, rec.Change.SequenceNumber)
	}
	r.mu.Lock()
	r.calls = append(r.calls, seqs)
	n := len(r.calls)
	r.mu.Unlock()
	if r.decide == nil {
		return events.DynamoDBEventResponse{}, nil
	}
	return r.decide(n, seqs)
}

func (r *recorder) snapshot() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

func seqs(from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, strconv.Itoa(i))
	}
	return out
}

func quietOptions(sink FailureSink, pos string) Options {
	return Options{StartingPosition: pos, PollInterval: 2 * time.Millisecond, DescribeInterval: 5 * time.Millisecond,
		RetryBackoff: time.Millisecond, Sink: sink, Logger: slog.New(slog.NewJSONHandler(io.Discard, nil))}
}

// runUntil runs r until the stream's shard is finished or a timeout.
func runUntil(t *testing.T, r *Runner, done func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	for !done() && ctx.Err() == nil {
		time.Sleep(5 * time.Millisecond)
	}
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	if ctx.Err() != nil {
		t.Fatal("timed out")
	}
}

func TestRunnerDelivery(t *testing.T) {
	failOnce := func(seq string) func(int, []string) (events.DynamoDBEventResponse, error) {
		return func(call int, s []string) (events.DynamoDBEventResponse, error) {
			if call == 1 {
				return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: "1003"}, {ItemIdentifier: seq}}}, nil
			}
			return events.DynamoDBEventResponse{}, nil
		}
	}
	tests := []struct {
		name      string
		mapping   Mapping
		records   int
		decide    func(int, []string) (events.DynamoDBEventResponse, error)
		wantCalls [][]string
		wantSink  [][2]string // start, end sequence of each on-failure record
	}{
		{
			name: "batches of BatchSize", mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 2, MaximumRetryAttempts: -1}, records: 5,
			wantCalls: [][]string{seqs(1000, 1001), seqs(1002, 1003), {"1004"}},
		},
		{
			name:    "partial failure retries from the lowest failed record",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 5, MaximumRetryAttempts: -1, ReportBatchItemFailures: true}, records: 5,
			decide:    failOnce("1001"),
			wantCalls: [][]string{seqs(1000, 1004), seqs(1001, 1004)},
		},
		{
			name:    "failures ignored without ReportBatchItemFailures",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 5, MaximumRetryAttempts: -1}, records: 5,
			decide:    failOnce("1001"),
			wantCalls: [][]string{seqs(1000, 1004)},
		},
		{
			name:    "unknown item identifier fails the whole batch",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 3, MaximumRetryAttempts: -1, ReportBatchItemFailures: true}, records: 3,
			decide: func(call int, s []string) (events.DynamoDBEventResponse, error) {
				if call == 1 {
					return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: ""}}}, nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			wantCalls: [][]string{seqs(1000, 1002), seqs(1000, 1002)},
		},
		{
			name:    "retries exhausted go to the on-failure destination",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 3, MaximumRetryAttempts: 2, ReportBatchItemFailures: true}, records: 3,
			decide: func(call int, s []string) (events.DynamoDBEventResponse, error) {
				if slices.Contains(s, "1001") {
					return events.DynamoDBEventResponse{BatchItemFailures: []events.DynamoDBBatchItemFailure{{ItemIdentifier: "1001"}}}, nil
				}
				return events.DynamoDBEventResponse{}, nil
			},
			wantCalls: [][]string{seqs(1000, 1002), seqs(1001, 1002), seqs(1001, 1002)},
			wantSink:  [][2]string{{"1001", "1002"}},
		},
		{
			name:    "function error with bisection isolates the poison record",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 4, MaximumRetryAttempts: 3, BisectBatchOnError: true}, records: 4,
			decide: func(call int, s []string) (events.DynamoDBEventResponse, error) {
				if slices.Contains(s, "1001") {
					return events.DynamoDBEventResponse{}, errors.New("poison")
				}
				return events.DynamoDBEventResponse{}, nil
			},
			// [0-3] fails (1), halves [0-1] fails (2), [0] ok, [1] fails (3), (4) > 3: on-failure; [2-3] ok.
			wantCalls: [][]string{seqs(1000, 1003), seqs(1000, 1001), {"1000"}, {"1001"}, {"1001"}, seqs(1002, 1003)},
			wantSink:  [][2]string{{"1001", "1001"}},
		},
		{
			name:    "panics are function errors",
			mapping: Mapping{MaximumBatchingWindow: time.Second, BatchSize: 2, MaximumRetryAttempts: 0}, records: 2,
			decide:    func(int, []string) (events.DynamoDBEventResponse, error) { panic("boom") },
			wantCalls: [][]string{seqs(1000, 1001)},
			wantSink:  [][2]string{{"1000", "1001"}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			fs := &fakeStream{}
			fs.add("REMOVE", tt.records)
			fs.closed = true
			rec := &recorder{decide: tt.decide}
			sink := &fakeSink{}
			r := New(fs, "t", tt.mapping, rec.handle, quietOptions(sink, TrimHorizon))
			runUntil(t, r, func() bool {
				r.mu.Lock()
				defer r.mu.Unlock()
				st := r.shards["shardId-1"]
				return st != nil && st.finished
			})
			if got := rec.snapshot(); fmt.Sprint(got) != fmt.Sprint(tt.wantCalls) {
				t.Errorf("invocations = %v, want %v", got, tt.wantCalls)
			}
			var gotSink [][2]string
			for _, s := range sink.got {
				gotSink = append(gotSink, [2]string{s.DDBStreamBatchInfo.StartSequenceNumber, s.DDBStreamBatchInfo.EndSequenceNumber})
				if s.DDBStreamBatchInfo.StreamARN != fakeStreamARN || s.DDBStreamBatchInfo.ShardID != "shardId-1" ||
					s.RequestContext.Condition != "RetryAttemptsExhausted" || s.RequestContext.ApproximateInvokeCount < 1 {
					t.Errorf("on-failure record = %+v", s)
				}
			}
			if fmt.Sprint(gotSink) != fmt.Sprint(tt.wantSink) {
				t.Errorf("on-failure batches = %v, want %v", gotSink, tt.wantSink)
			}
		})
	}
}

func TestRunnerFiltersAndLatest(t *testing.T) {
	fs := &fakeStream{}
	fs.add("REMOVE", 3) // before Start: not delivered with LATEST
	p, err := ParsePattern(`{"eventName": ["REMOVE"]}`)
	if err != nil {
		t.Fatal(err)
	}
	rec := &recorder{}
	r := New(fs, "t", Mapping{BatchSize: 10, MaximumRetryAttempts: -1, Filters: Filters{p}}, rec.handle, quietOptions(nil, ""))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.Start(ctx); err != nil {
		t.Fatal(err)
	}
	fs.add("INSERT", 2)
	fs.add("REMOVE", 1)
	fs.add("MODIFY", 1)
	for ctx.Err() == nil && len(rec.snapshot()) == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range rec.snapshot() {
		got = append(got, c...)
	}
	if strings.Join(got, ",") != "1005" {
		t.Errorf("delivered %v, want only the REMOVE written after Start [1005]", got)
	}
	if r.StreamARN() != fakeStreamARN {
		t.Errorf("StreamARN() = %q, want %q", r.StreamARN(), fakeStreamARN)
	}
}

// Package streamrunner is the offline DynamoDB event source mapping: it
// reads a table's stream from DynamoDB Local (DynamoDB Streams API),
// applies the mapping's filters from template.yaml, delivers batches to a
// handler in process and follows Lambda's retry rules (ReportBatchItemFailures,
// MaximumRetryAttempts, BisectBatchOnFunctionError) and on-failure
// destination.
package streamrunner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
)

// StreamsAPI is the part of the DynamoDB Streams client the runner uses.
type StreamsAPI interface {
	ListStreams(ctx context.Context, in *dynamodbstreams.ListStreamsInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.ListStreamsOutput, error)
	DescribeStream(ctx context.Context, in *dynamodbstreams.DescribeStreamInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.DescribeStreamOutput, error)
	GetShardIterator(ctx context.Context, in *dynamodbstreams.GetShardIteratorInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetShardIteratorOutput, error)
	GetRecords(ctx context.Context, in *dynamodbstreams.GetRecordsInput, optFns ...func(*dynamodbstreams.Options)) (*dynamodbstreams.GetRecordsOutput, error)
}

var _ StreamsAPI = (*dynamodbstreams.Client)(nil)

// Handler is a Lambda handler for DynamoDB stream batches.
type Handler func(ctx context.Context, ev events.DynamoDBEvent) (events.DynamoDBEventResponse, error)

// FailureSink receives the metadata of batches whose retries are exhausted
// (Lambda's on-failure destination). SQSSink sends it to SQS.
type FailureSink interface {
	SendFailure(ctx context.Context, rec OnFailureRecord) error
}

// OnFailureRecord is what Lambda sends to a stream mapping's on-failure
// destination: the batch's position, not its records.
type OnFailureRecord struct {
	RequestContext struct {
		RequestID              string `json:"requestId"`
		FunctionARN            string `json:"functionArn"`
		Condition              string `json:"condition"`
		ApproximateInvokeCount int    `json:"approximateInvokeCount"`
	} `json:"requestContext"`
	ResponseContext struct {
		StatusCode      int    `json:"statusCode"`
		ExecutedVersion string `json:"executedVersion"`
		FunctionError   string `json:"functionError,omitempty"`
	} `json:"responseContext"`
	Version            string    `json:"version"`
	Timestamp          time.Time `json:"timestamp"`
	DDBStreamBatchInfo struct {
		ShardID                         string    `json:"shardId"`
		StartSequenceNumber             string    `json:"startSequenceNumber"`
		EndSequenceNumber               string    `json:"endSequenceNumber"`
		ApproximateArrivalOfFirstRecord time.Time `json:"approximateArrivalOfFirstRecord"`
		ApproximateArrivalOfLastRecord  time.Time `json:"approximateArrivalOfLastRecord"`
		BatchSize                       int       `json:"batchSize"`
		StreamARN                       string    `json:"streamArn"`
	} `json:"DDBStreamBatchInfo"`
}

// Options tune a Runner; the zero value of each field means its default.
type Options struct {
	// StartingPosition is where reading starts. The default is Latest,
	// whatever the template says: only what is written after Start is
	// delivered (and everything in shards that appear later, from their
	// start). TrimHorizon delivers everything the stream still holds, which
	// the template asks for in AWS, where the mapping exists before the
	// table has data.
	StartingPosition string
	// PollInterval is the pause after an empty GetRecords; default 250ms.
	PollInterval time.Duration
	// DescribeInterval is how often new shards are looked for; default 1s.
	DescribeInterval time.Duration
	// RetryBackoff is the first pause before retrying a failed batch,
	// doubled up to 5 seconds; default 200ms.
	RetryBackoff time.Duration
	// FunctionARN is reported in on-failure records.
	FunctionARN string
	// Sink receives exhausted batches; nil logs them only.
	Sink FailureSink
	// Logger; nil means slog.Default().
	Logger *slog.Logger
}

// Runner delivers a table's stream to a handler. Use Run, or Start and
// Close.
type Runner struct {
	streams StreamsAPI
	table   string
	m       Mapping
	handler Handler
	opts    Options
	log     *slog.Logger

	streamARN string

	mu     sync.Mutex
	shards map[string]*shardState

	cancel context.CancelFunc
	done   chan struct{}
	runErr error
}

type shardState struct {
	parent   string
	started  bool
	finished bool
	iterator *string // an iterator taken at start (LATEST), else nil
}

// New returns a Runner reading the stream of table for mapping m.
func New(streams StreamsAPI, table string, m Mapping, handler Handler, opts Options) *Runner {
	if opts.StartingPosition == "" {
		opts.StartingPosition = Latest
	}
	if opts.PollInterval <= 0 {
		opts.PollInterval = 250 * time.Millisecond
	}
	if opts.DescribeInterval <= 0 {
		opts.DescribeInterval = time.Second
	}
	if opts.RetryBackoff <= 0 {
		opts.RetryBackoff = 200 * time.Millisecond
	}
	if m.BatchSize <= 0 {
		m.BatchSize = DefaultBatchSize
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Runner{streams: streams, table: table, m: m, handler: handler, opts: opts, log: log.With("component", "streamrunner", "table", table),
		shards: map[string]*shardState{}}
}

// Start positions the runner on the stream (after Start returns, with
// Latest, every later write is delivered) and runs it in the background
// until Close.
func (r *Runner) Start(ctx context.Context) error {
	if err := r.position(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	r.cancel = cancel
	r.done = make(chan struct{})
	go func() {
		defer close(r.done)
		r.runErr = r.loop(ctx)
	}()
	return nil
}

// Close stops a started runner and waits for the batch in flight.
func (r *Runner) Close() error {
	if r.cancel == nil {
		return nil
	}
	r.cancel()
	<-r.done
	return r.runErr
}

// Run positions the runner and delivers records until ctx is cancelled,
// then returns nil.
func (r *Runner) Run(ctx context.Context) error {
	if err := r.position(ctx); err != nil {
		return err
	}
	return r.loop(ctx)
}

// StreamARN is the ARN of the stream being read (known after positioning).
func (r *Runner) StreamARN() string { return r.streamARN }

func (r *Runner) position(ctx context.Context) error {
	out, err := r.streams.ListStreams(ctx, &dynamodbstreams.ListStreamsInput{TableName: aws.String(r.table)})
	if err != nil {
		return fmt.Errorf("list streams of table %s: %w", r.table, err)
	}
	if len(out.Streams) == 0 {
		return fmt.Errorf("table %s has no stream", r.table)
	}
	r.streamARN = aws.ToString(out.Streams[len(out.Streams)-1].StreamArn)
	shards, err := r.describe(ctx)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range shards {
		id := aws.ToString(s.ShardId)
		st := &shardState{parent: aws.ToString(s.ParentShardId)}
		r.shards[id] = st
		if r.opts.StartingPosition != Latest {
			continue
		}
		if s.SequenceNumberRange != nil && s.SequenceNumberRange.EndingSequenceNumber != nil {
			st.started, st.finished = true, true // closed before we started: history
			continue
		}
		it, err := r.streams.GetShardIterator(ctx, &dynamodbstreams.GetShardIteratorInput{
			StreamArn: aws.String(r.streamARN), ShardId: s.ShardId, ShardIteratorType: types.ShardIteratorTypeLatest,
		})
		if err != nil {
			return fmt.Errorf("get LATEST iterator of shard %s: %w", id, err)
		}
		st.iterator = it.ShardIterator
	}
	return nil
}

func (r *Runner) describe(ctx context.Context) ([]types.Shard, error) {
	var shards []types.Shard
	var start *string
	for {
		out, err := r.streams.DescribeStream(ctx, &dynamodbstreams.DescribeStreamInput{StreamArn: aws.String(r.streamARN), ExclusiveStartShardId: start})
		if err != nil {
			return nil, fmt.Errorf("describe stream %s: %w", r.streamARN, err)
		}
		shards = append(shards, out.StreamDescription.Shards...)
		start = out.StreamDescription.LastEvaluatedShardId
		if start == nil {
			return shards, nil
		}
	}
}

// loop discovers shards and reads each in its own goroutine, a child only
// after its parent is finished (Lambda's per-key ordering).
func (r *Runner) loop(ctx context.Context) error {
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		r.mu.Lock()
		for id, st := range r.shards {
			if st.started {
				continue
			}
			if p, ok := r.shards[st.parent]; ok && !p.finished {
				continue
			}
			st.started = true
			it := st.iterator
			wg.Add(1)
			go func() {
				defer wg.Done()
				r.readShard(ctx, id, it)
				r.mu.Lock()
				st.finished = true
				r.mu.Unlock()
			}()
		}
		r.mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(r.opts.DescribeInterval):
		}
		shards, err := r.describe(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			r.log.WarnContext(ctx, "describe stream failed", "error", err.Error())
			continue
		}
		r.mu.Lock()
		for _, s := range shards {
			id := aws.ToString(s.ShardId)
			if _, ok := r.shards[id]; !ok {
				r.shards[id] = &shardState{parent: aws.ToString(s.ParentShardId)}
			}
		}
		r.mu.Unlock()
	}
}

func (r *Runner) readShard(ctx context.Context, shardID string, it *string) {
	last := ""
	iterator := func() (*string, error) {
		in := &dynamodbstreams.GetShardIteratorInput{StreamArn: aws.String(r.streamARN), ShardId: aws.String(shardID),
			ShardIteratorType: types.ShardIteratorTypeTrimHorizon}
		if last != "" {
			in.ShardIteratorType, in.SequenceNumber = types.ShardIteratorTypeAfterSequenceNumber, aws.String(last)
		}
		out, err := r.streams.GetShardIterator(ctx, in)
		if err != nil {
			return nil, err
		}
		return out.ShardIterator, nil
	}
	var (
		buf     []events.DynamoDBEventRecord
		firstAt time.Time
	)
	for ctx.Err() == nil {
		if it == nil {
			var err error
			if it, err = iterator(); err != nil {
				r.pauseAfter(ctx, "get shard iterator", shardID, err)
				continue
			}
		}
		out, err := r.streams.GetRecords(ctx, &dynamodbstreams.GetRecordsInput{ShardIterator: it})
		if err != nil {
			var expired *types.ExpiredIteratorException
			if errors.As(err, &expired) {
				it = nil
				continue
			}
			r.pauseAfter(ctx, "get records", shardID, err)
			it = nil
			continue
		}
		for _, rec := range out.Records {
			if rec.Dynamodb == nil {
				continue
			}
			last = aws.ToString(rec.Dynamodb.SequenceNumber)
			ev, err := EventRecord(rec, r.streamARN)
			if err != nil {
				r.log.ErrorContext(ctx, "unreadable stream record dropped", "shard", shardID, "error", err.Error())
				continue
			}
			ok, err := r.m.Filters.Match(ev)
			if err != nil {
				r.log.ErrorContext(ctx, "stream record could not be filtered, dropped", "shard", shardID, "error", err.Error())
				continue
			}
			if !ok {
				continue // Lambda drops records that match no filter
			}
			if len(buf) == 0 {
				firstAt = time.Now()
			}
			buf = append(buf, ev)
		}
		it = out.NextShardIterator
		closed := it == nil
		for len(buf) >= r.m.BatchSize {
			r.process(ctx, shardID, buf[:r.m.BatchSize], 0)
			buf = buf[r.m.BatchSize:]
		}
		if len(buf) > 0 && (closed || time.Since(firstAt) >= r.m.MaximumBatchingWindow) {
			r.process(ctx, shardID, buf, 0)
			buf = nil
		}
		if closed {
			return
		}
		if len(out.Records) == 0 {
			sleep(ctx, r.opts.PollInterval)
		}
	}
}

func (r *Runner) pauseAfter(ctx context.Context, what, shardID string, err error) {
	if ctx.Err() != nil {
		return
	}
	r.log.WarnContext(ctx, what+" failed", "shard", shardID, "error", err.Error())
	sleep(ctx, time.Second)
}

// process delivers batch until it succeeds, honouring partial failures,
// bisection and the retry limit. failures is how many failed invocations
// the records have had.
func (r *Runner) process(ctx context.Context, shardID string, batch []events.DynamoDBEventRecord, failures int) {
	for len(batch) > 0 && ctx.Err() == nil {
		resp, err := r.invoke(ctx, batch)
		functionError := ""
		switch {
		case err != nil:
			functionError = "Unhandled"
			r.log.WarnContext(ctx, "handler failed", "shard", shardID, "records", len(batch), "error", err.Error())
			if r.m.BisectBatchOnError && len(batch) > 1 {
				failures++
				if r.exhausted(failures) {
					r.sendFailure(ctx, shardID, batch, failures, functionError)
					return
				}
				half := len(batch) / 2
				r.process(ctx, shardID, batch[:half], failures)
				r.process(ctx, shardID, batch[half:], failures)
				return
			}
		case !r.m.ReportBatchItemFailures:
			return
		default:
			i := firstFailure(batch, resp)
			if i < 0 {
				return
			}
			batch = batch[i:] // records before the first failure are done
		}
		failures++
		if r.exhausted(failures) {
			r.sendFailure(ctx, shardID, batch, failures, functionError)
			return
		}
		sleep(ctx, min(r.opts.RetryBackoff<<min(failures-1, 10), 5*time.Second))
	}
}

func (r *Runner) exhausted(failures int) bool {
	return r.m.MaximumRetryAttempts >= 0 && failures > r.m.MaximumRetryAttempts
}

// firstFailure returns the index of the first record Lambda would retry
// from: the lowest reported sequence number; 0 when an identifier is empty
// or not in the batch (Lambda then fails the whole batch); -1 for success.
func firstFailure(batch []events.DynamoDBEventRecord, resp events.DynamoDBEventResponse) int {
	first := -1
	for _, f := range resp.BatchItemFailures {
		i := -1
		for j := range batch {
			if batch[j].Change.SequenceNumber == f.ItemIdentifier && f.ItemIdentifier != "" {
				i = j
				break
			}
		}
		if i < 0 {
			return 0
		}
		if first < 0 || compareSequence(batch[i].Change.SequenceNumber, batch[first].Change.SequenceNumber) < 0 {
			first = i
		}
	}
	return first
}

func (r *Runner) invoke(ctx context.Context, batch []events.DynamoDBEventRecord) (resp events.DynamoDBEventResponse, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("handler panicked: %v", p)
		}
	}()
	// The handler gets its own copy, as it would over the wire.
	recs := make([]events.DynamoDBEventRecord, len(batch))
	copy(recs, batch)
	return r.handler(ctx, events.DynamoDBEvent{Records: recs})
}

func (r *Runner) sendFailure(ctx context.Context, shardID string, batch []events.DynamoDBEventRecord, invokes int, functionError string) {
	var rec OnFailureRecord
	rec.RequestContext.FunctionARN = r.opts.FunctionARN
	rec.RequestContext.Condition = "RetryAttemptsExhausted"
	rec.RequestContext.ApproximateInvokeCount = invokes
	rec.ResponseContext.StatusCode = 200
	rec.ResponseContext.ExecutedVersion = "$LATEST"
	rec.ResponseContext.FunctionError = functionError
	rec.Version = "1.0"
	rec.Timestamp = time.Now().UTC()
	info := &rec.DDBStreamBatchInfo
	info.ShardID = shardID
	info.StartSequenceNumber = batch[0].Change.SequenceNumber
	info.EndSequenceNumber = batch[len(batch)-1].Change.SequenceNumber
	info.ApproximateArrivalOfFirstRecord = batch[0].Change.ApproximateCreationDateTime.UTC()
	info.ApproximateArrivalOfLastRecord = batch[len(batch)-1].Change.ApproximateCreationDateTime.UTC()
	info.BatchSize = len(batch)
	info.StreamARN = r.streamARN
	r.log.ErrorContext(ctx, "retries exhausted, batch sent to the on-failure destination", "shard", shardID,
		"startSequenceNumber", info.StartSequenceNumber, "endSequenceNumber", info.EndSequenceNumber, "records", len(batch))
	if r.opts.Sink == nil {
		return
	}
	if err := r.opts.Sink.SendFailure(ctx, rec); err != nil {
		r.log.ErrorContext(ctx, "on-failure destination refused the batch", "shard", shardID, "error", err.Error())
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}

// SQSAPI is the part of the SQS client SQSSink uses.
type SQSAPI interface {
	SendMessage(ctx context.Context, in *sqs.SendMessageInput, optFns ...func(*sqs.Options)) (*sqs.SendMessageOutput, error)
}

// SQSSink sends on-failure records to an SQS queue (moto offline), as JSON
// message bodies like Lambda's.
type SQSSink struct {
	client   SQSAPI
	queueURL string
}

// NewSQSSink returns a sink sending to queueURL.
func NewSQSSink(client SQSAPI, queueURL string) *SQSSink {
	return &SQSSink{client: client, queueURL: queueURL}
}

// SendFailure implements FailureSink.
func (s *SQSSink) SendFailure(ctx context.Context, rec OnFailureRecord) error {
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("send on-failure record: %w", err)
	}
	if _, err := s.client.SendMessage(ctx, &sqs.SendMessageInput{QueueUrl: aws.String(s.queueURL), MessageBody: aws.String(string(b))}); err != nil {
		return fmt.Errorf("send on-failure record to %s: %w", s.queueURL, err)
	}
	return nil
}

// Package lambdaapi serves the Lambda Invoke API on a loopback address, the
// way `sam local start-lambda` does, with in-process Go handlers standing in
// for the deployed functions. The local Step Functions runtime and any
// aws-sdk-go-v2 Lambda client reach it through AWS_ENDPOINT_URL_LAMBDA.
package lambdaapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-lambda-go/lambda/messages"
	"github.com/aws/aws-lambda-go/lambdacontext"
)

// Region and AccountID are the ones the offline stack pretends to run in;
// they make up the function ARNs handed to handlers.
const (
	Region    = "us-east-1"
	AccountID = "000000000000"
)

// maxPayload is Lambda's limit on a synchronous request payload.
const maxPayload = 6 << 20

// FunctionARN returns the ARN the offline stack gives the function name.
func FunctionARN(name string) string {
	return fmt.Sprintf("arn:aws:lambda:%s:%s:function:%s", Region, AccountID, name)
}

// Server is a running local Lambda Invoke API. Its methods are safe for
// concurrent use.
type Server struct {
	listener net.Listener
	http     *http.Server
	logger   *slog.Logger

	// base is cancelled by Close, so asynchronous invocations stop with it.
	base   context.Context
	cancel context.CancelFunc
	async  sync.WaitGroup

	mu       sync.RWMutex
	handlers map[string]lambda.Handler
	timeouts map[string]time.Duration
	faults   faults
}

// Start listens on addr, which must be a loopback address such as
// "127.0.0.1:0", and serves the Invoke API until Close.
func Start(addr string) (*Server, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("start lambda api on %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return nil, fmt.Errorf("start lambda api on %q: address is not a loopback IP", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start lambda api on %q: %w", addr, err)
	}
	base, cancel := context.WithCancel(context.Background())
	s := &Server{
		listener: ln,
		logger:   slog.Default(),
		base:     base,
		cancel:   cancel,
		handlers: make(map[string]lambda.Handler),
		timeouts: make(map[string]time.Duration),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /2015-03-31/functions/{name}/invocations", s.invoke)
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return s, nil
}

// Register makes h answer invocations of the function called name. A later
// Register of the same name replaces the handler. Build h with
// lambda.NewHandler(fn) so it decodes and encodes exactly as in Lambda.
func (s *Server) Register(name string, h lambda.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.handlers[name] = h
}

// SetTimeout gives invocations of the function called name a context that
// ends after d, as the function's Timeout does in Lambda.
func (s *Server) SetTimeout(name string, d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.timeouts[name] = d
}

// URL is the endpoint to give AWS_ENDPOINT_URL_LAMBDA, such as
// "http://127.0.0.1:41234".
func (s *Server) URL() string {
	return "http://" + s.listener.Addr().String()
}

// Close stops accepting invocations, cancels running asynchronous ones and
// waits for them to return.
func (s *Server) Close() error {
	s.cancel()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := s.http.Shutdown(ctx)
	s.async.Wait()
	if err != nil {
		return fmt.Errorf("close lambda api: %w", err)
	}
	return nil
}

// FunctionName extracts the function name from the {name} of an Invoke
// path, which may be a name, a partial ARN ("000000000000:function:name") or
// a full ARN, with or without a version or alias qualifier.
func FunctionName(s string) string {
	if i := strings.LastIndex(s, "function:"); i >= 0 {
		s = s[i+len("function:"):]
	}
	if i := strings.Index(s, ":"); i >= 0 {
		s = s[:i]
	}
	return s
}

func (s *Server) handler(name string) (lambda.Handler, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	h, ok := s.handlers[name]
	return h, ok
}

func (s *Server) invoke(w http.ResponseWriter, r *http.Request) {
	name := FunctionName(r.PathValue("name"))
	requestID := newRequestID()
	w.Header().Set("X-Amzn-Requestid", requestID)
	h, ok := s.handler(name)
	if !ok {
		writeServiceError(w, http.StatusNotFound, "ResourceNotFoundException", "Function not found: "+FunctionARN(name))
		return
	}
	payload, err := io.ReadAll(io.LimitReader(r.Body, maxPayload+1))
	if err != nil {
		writeServiceError(w, http.StatusBadRequest, "InvalidRequestContentException", "could not read the request body")
		return
	}
	if len(payload) > maxPayload {
		writeServiceError(w, http.StatusRequestEntityTooLarge, "RequestTooLargeException", "request payload exceeds the 6 MB limit")
		return
	}
	if len(payload) == 0 {
		payload = []byte("{}")
	}
	lc := &lambdacontext.LambdaContext{AwsRequestID: requestID, InvokedFunctionArn: FunctionARN(name)}

	w.Header().Set("X-Amz-Executed-Version", "$LATEST")
	switch t := r.Header.Get("X-Amz-Invocation-Type"); t {
	case "", "RequestResponse":
	case "Event":
		s.async.Add(1)
		go func() {
			defer s.async.Done()
			if _, ierr := call(lambdacontext.NewContext(s.base, lc), h, payload); ierr != nil {
				s.logger.Error("asynchronous invocation failed", "function", name, "requestId", requestID, "errorType", ierr.Type)
			}
		}()
		w.WriteHeader(http.StatusAccepted)
		return
	case "DryRun":
		w.WriteHeader(http.StatusNoContent)
		return
	default:
		writeServiceError(w, http.StatusBadRequest, "InvalidParameterValueException", fmt.Sprintf("unsupported invocation type %q", t))
		return
	}

	fault, faulted := s.faults.pick(name)
	switch fault {
	case Throttled:
		writeServiceError(w, http.StatusTooManyRequests, "TooManyRequestsException", "Rate Exceeded. (a fault injected offline)")
		return
	case ServiceError:
		writeServiceError(w, http.StatusInternalServerError, "ServiceException", "Lambda was unable to process the request (a fault injected offline)")
		return
	}
	// Not the request's context: Lambda runs an invocation to its end (or
	// its timeout) whatever becomes of the caller, so a Step Functions host
	// that dies mid-invocation does not cut an Issue step off between the
	// CA creating an order and the order being stored.
	ctx := lambdacontext.NewContext(s.base, lc)
	s.mu.RLock()
	timeout := s.timeouts[name]
	s.mu.RUnlock()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	out, ierr := call(ctx, h, payload)
	if faulted && fault == TimedOut {
		// The work was done; the answer is lost, as when the function
		// times out after its last write.
		ierr = &messages.InvokeResponse_Error{Type: "Sandbox.Timedout", Message: "Task timed out (a fault injected offline after the handler returned)"}
	}
	w.Header().Set("Content-Type", "application/json")
	if ierr != nil {
		body, _ := json.Marshal(ierr)
		w.Header().Set("X-Amz-Function-Error", "Unhandled")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write(body)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(out)
}

// call runs h the way the aws-lambda-go runtime loop does: a returned error
// or a panic becomes the invocation error the Lambda service reports.
func call(ctx context.Context, h lambda.Handler, payload []byte) (out []byte, ierr *messages.InvokeResponse_Error) {
	defer func() {
		if v := recover(); v != nil {
			if ive, ok := v.(messages.InvokeResponse_Error); ok {
				ierr = &ive
				return
			}
			ierr = &messages.InvokeResponse_Error{Type: typeName(v), Message: fmt.Sprintf("%v", v)}
		}
	}()
	out, err := h.Invoke(ctx, payload)
	if err != nil {
		return nil, ErrorResponse(err)
	}
	return out, nil
}

// ErrorResponse is the errorType and errorMessage that aws-lambda-go reports
// for err: a messages.InvokeResponse_Error is used as it is; otherwise the
// type is err's Go type name (the element's name for a pointer) and the
// message err.Error(). Like aws-lambda-go it does not unwrap err.
func ErrorResponse(err error) *messages.InvokeResponse_Error {
	if ive, ok := err.(messages.InvokeResponse_Error); ok { //nolint:errorlint // aws-lambda-go does not unwrap
		return &ive
	}
	return &messages.InvokeResponse_Error{Type: typeName(err), Message: err.Error()}
}

func typeName(v any) string {
	t := reflect.TypeOf(v)
	if t == nil {
		return ""
	}
	if t.Kind() == reflect.Pointer {
		return t.Elem().Name()
	}
	return t.Name()
}

// writeServiceError answers like the Lambda service does for a failed API
// call (as opposed to a failed function): the error code in
// x-amzn-ErrorType and a JSON body with the message.
func writeServiceError(w http.ResponseWriter, status int, code, message string) {
	body, _ := json.Marshal(struct {
		Type    string `json:"Type"`
		Message string `json:"message"`
	}{"User", message})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Amzn-Errortype", code)
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

package offline

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	cfndynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"

	"github.com/certflow/certflow/offline/proc"
	"github.com/certflow/certflow/offline/template"
)

// Logical IDs of the tables in template.yaml.
const (
	TableLogicalID  = "CertificatesTable"  // the certificate table
	TimersLogicalID = "RenewalTimersTable" // the renewal timers table
)

func command(bin string, args ...string) *exec.Cmd { return exec.Command(bin, args...) }

func (s *Stack) startDynamoDB(ctx context.Context, port int, onDisk bool) error {
	port, err := proc.PortOrFree(port)
	if err != nil {
		return err
	}
	store := []string{"-inMemory"}
	if onDisk {
		dir := filepath.Join(s.Dir, "dynamodb")
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		store = []string{"-dbPath", dir}
	}
	args := append([]string{
		"-Djava.library.path=" + filepath.Join(s.Tools.DynamoDBDir, "DynamoDBLocal_lib"),
		"-Xmx512m",
		"-jar", filepath.Join(s.Tools.DynamoDBDir, "DynamoDBLocal.jar"),
	}, store...)
	args = append(args, "-sharedDb", "-disableTelemetry", "-port", strconv.Itoa(port))
	p, err := s.start("DynamoDB Local", nil, s.Tools.DynamoDBDir, s.Tools.Java, args...)
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.WaitReady(ctx, 60*time.Second, httpAnswers(url)); err != nil {
		return err
	}
	s.restarts[p.Name()] = func(ctx context.Context) error {
		if err := s.startDynamoDB(ctx, port, onDisk); err != nil {
			return err
		}
		return s.ensureTables(ctx)
	}
	s.DynamoDBEndpoint = url
	if err := s.SetEndpoint(ctx, "DYNAMODB", url); err != nil {
		return err
	}
	return s.SetEndpoint(ctx, "DYNAMODB_STREAMS", url)
}

// ensureTables creates the stack's tables again where they are missing
// (DynamoDB Local restarted in memory): empty, but the functions keep
// working.
func (s *Stack) ensureTables(ctx context.Context) error {
	client := dynamodb.NewFromConfig(s.AWS)
	for id, name := range map[string]string{TableLogicalID: s.Tables.Certificates, TimersLogicalID: s.Tables.Timers} {
		if name == "" {
			continue
		}
		err := CreateTable(ctx, client, s.Template, id, name)
		var inUse *ddbtypes.ResourceInUseException
		if err != nil && !errors.As(err, &inUse) {
			return err
		}
	}
	return nil
}

func (s *Stack) startMoto(ctx context.Context, port int) error {
	port, err := proc.PortOrFree(port)
	if err != nil {
		return err
	}
	// Dummy credentials and no instance metadata: moto must never look for
	// credentials off this machine.
	env := []string{"AWS_EC2_METADATA_DISABLED=true", "AWS_ACCESS_KEY_ID=offline", "AWS_SECRET_ACCESS_KEY=offline", "AWS_DEFAULT_REGION=" + Region}
	p, err := s.start("moto_server", env, s.Dir, s.Tools.MotoServer, "-H", "127.0.0.1", "-p", strconv.Itoa(port))
	if err != nil {
		return err
	}
	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	if err := p.WaitReady(ctx, 60*time.Second, httpAnswers(url+"/moto-api/")); err != nil {
		return err
	}
	// moto keeps its state in memory: a restarted moto_server has a new
	// KMS key, and what the old one sealed cannot be opened.
	s.restarts[p.Name()] = func(ctx context.Context) error { return s.startMoto(ctx, port) }
	s.MotoEndpoint = url
	for _, id := range []string{"KMS", "EVENTBRIDGE", "SQS", "ROUTE_53", "CLOUDWATCH", "STS"} {
		if err := s.SetEndpoint(ctx, id, url); err != nil {
			return err
		}
	}
	client := kms.NewFromConfig(s.AWS)
	out, err := client.CreateKey(ctx, &kms.CreateKeyInput{Description: aws.String("certflow offline key")})
	if err != nil {
		return fmt.Errorf("create the offline KMS key in moto: %w", err)
	}
	s.KMSKeyID = aws.ToString(out.KeyMetadata.KeyId)
	// A stable name for env.json and `sam local invoke`.
	if _, err := client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(KMSKeyAlias), TargetKeyId: out.KeyMetadata.KeyId}); err != nil {
		return fmt.Errorf("alias the offline KMS key: %w", err)
	}
	return nil
}

// createTables creates the certificate table and the renewal timers table
// from template.yaml, named "certflow" and "certflow-timers" (or with a
// "-N" suffix when those exist already).
func (s *Stack) createTables(ctx context.Context) (Tables, error) {
	if s.DynamoDBEndpoint == "" {
		return Tables{}, errNotStarted
	}
	client := dynamodb.NewFromConfig(s.AWS)
	for i := 0; ; i++ {
		suffix := ""
		if i > 0 {
			suffix = fmt.Sprintf("-%d", i)
		}
		t := Tables{Certificates: "certflow" + suffix, Timers: "certflow-timers" + suffix}
		err := CreateTable(ctx, client, s.Template, TableLogicalID, t.Certificates)
		var inUse *ddbtypes.ResourceInUseException
		if errors.As(err, &inUse) && i < 100 {
			continue
		}
		if err != nil {
			return t, err
		}
		return t, CreateTable(ctx, client, s.Template, TimersLogicalID, t.Timers)
	}
}

// CreateTable creates table name from the template's definition of the
// table logicalID (keys, indexes, stream, TTL), and waits until it is
// active: the local table is the one deployed to AWS.
func CreateTable(ctx context.Context, client *dynamodb.Client, tmpl *template.Template, logicalID, name string) error {
	t, err := tmpl.Table(logicalID)
	if err != nil {
		return err
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(name),
		BillingMode: ddbtypes.BillingModePayPerRequest,
	}
	for _, a := range t.AttributeDefinitions {
		in.AttributeDefinitions = append(in.AttributeDefinitions, ddbtypes.AttributeDefinition{
			AttributeName: aws.String(a.AttributeName), AttributeType: ddbtypes.ScalarAttributeType(a.AttributeType),
		})
	}
	in.KeySchema = keySchema(t.KeySchema)
	for _, g := range t.GlobalSecondaryIndexes {
		gsi := ddbtypes.GlobalSecondaryIndex{
			IndexName: aws.String(g.IndexName),
			KeySchema: keySchema(g.KeySchema),
			Projection: &ddbtypes.Projection{
				ProjectionType: ddbtypes.ProjectionType(aws.ToString(g.Projection.ProjectionType)),
			},
		}
		if len(g.Projection.NonKeyAttributes) > 0 {
			gsi.Projection.NonKeyAttributes = g.Projection.NonKeyAttributes
		}
		in.GlobalSecondaryIndexes = append(in.GlobalSecondaryIndexes, gsi)
	}
	if t.StreamSpecification != nil {
		in.StreamSpecification = &ddbtypes.StreamSpecification{
			StreamEnabled:  aws.Bool(true),
			StreamViewType: ddbtypes.StreamViewType(t.StreamSpecification.StreamViewType),
		}
	}
	if _, err := client.CreateTable(ctx, in); err != nil {
		return fmt.Errorf("create table %s: %w", name, err)
	}
	w := dynamodb.NewTableExistsWaiter(client, func(o *dynamodb.TableExistsWaiterOptions) {
		o.MinDelay = 100 * time.Millisecond
		o.MaxDelay = time.Second
	})
	if err := w.Wait(ctx, &dynamodb.DescribeTableInput{TableName: aws.String(name)}, time.Minute); err != nil {
		return fmt.Errorf("wait for table %s: %w", name, err)
	}
	if ttl := t.TimeToLiveSpecification; ttl != nil && ttl.Enabled {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: ttl.AttributeName, Enabled: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("enable TTL on %s: %w", name, err)
		}
	}
	return nil
}

func keySchema(ks []cfndynamodb.Table_KeySchema) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)})
	}
	return out
}

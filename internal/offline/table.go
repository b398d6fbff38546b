package offline

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	ddbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	cfndynamodb "github.com/awslabs/goformation/v7/cloudformation/dynamodb"
	"github.com/awslabs/goformation/v7/intrinsics"
)

// Logical IDs of the tables in template.yaml.
const (
	// TableLogicalID is the certificate table.
	TableLogicalID = "CertificatesTable"
	// TimersLogicalID is the renewal timers table.
	TimersLogicalID = "RenewalTimersTable"
)

// TableFromTemplate reads the definition of the table logicalID in
// template.yaml and returns the CreateTable input and the TTL attribute, so
// the local table is the one deployed to AWS.
func TableFromTemplate(templatePath, logicalID, tableName string) (*dynamodb.CreateTableInput, string, error) {
	raw, err := TemplateResource(templatePath, logicalID)
	if err != nil {
		return nil, "", err
	}
	var t cfndynamodb.Table
	if err := json.Unmarshal(raw, &t); err != nil {
		return nil, "", fmt.Errorf("%s in %s: %w", logicalID, templatePath, err)
	}
	in := &dynamodb.CreateTableInput{
		TableName:   aws.String(tableName),
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
	ttl := ""
	if t.TimeToLiveSpecification != nil && t.TimeToLiveSpecification.Enabled {
		ttl = aws.ToString(t.TimeToLiveSpecification.AttributeName)
	}
	return in, ttl, nil
}

func keySchema(ks []cfndynamodb.Table_KeySchema) []ddbtypes.KeySchemaElement {
	out := make([]ddbtypes.KeySchemaElement, 0, len(ks))
	for _, k := range ks {
		out = append(out, ddbtypes.KeySchemaElement{AttributeName: aws.String(k.AttributeName), KeyType: ddbtypes.KeyType(k.KeyType)})
	}
	return out
}

// Tables names the tables of an offline stack.
type Tables struct {
	Certificates string
	Timers       string
}

// CreateTable creates the certificate table from template.yaml in DynamoDB
// Local (with TTL enabled as in the template) and returns its name:
// "certflow", or "certflow-N" when that exists already. Renewal timers then
// live in the same table (certstore's default).
func (s *Stack) CreateTable(ctx context.Context) (string, error) {
	t, err := s.createTables(ctx, false)
	return t.Certificates, err
}

// CreateTables creates the certificate table and the renewal timers table
// from template.yaml, named "certflow" and "certflow-timers" (or with a
// "-N" suffix when those exist already).
func (s *Stack) CreateTables(ctx context.Context) (Tables, error) {
	return s.createTables(ctx, true)
}

func (s *Stack) createTables(ctx context.Context, timers bool) (Tables, error) {
	if s.DynamoDBEndpoint == "" {
		return Tables{}, errNotStarted
	}
	cfg, err := s.AWSConfig(ctx)
	if err != nil {
		return Tables{}, err
	}
	client := dynamodb.NewFromConfig(cfg)
	for i := 0; ; i++ {
		suffix := ""
		if i > 0 {
			suffix = fmt.Sprintf("-%d", i)
		}
		t := Tables{Certificates: "certflow" + suffix}
		err := CreateTable(ctx, client, s.Tools.TemplatePath(), TableLogicalID, t.Certificates)
		var inUse *ddbtypes.ResourceInUseException
		if errors.As(err, &inUse) && i < 100 {
			continue
		}
		if err != nil || !timers {
			return t, err
		}
		t.Timers = "certflow-timers" + suffix
		return t, CreateTable(ctx, client, s.Tools.TemplatePath(), TimersLogicalID, t.Timers)
	}
}

// CreateTable creates table name from the template's definition of the
// table logicalID, waits until it is active and enables TTL.
func CreateTable(ctx context.Context, client *dynamodb.Client, templatePath, logicalID, name string) error {
	in, ttl, err := TableFromTemplate(templatePath, logicalID, name)
	if err != nil {
		return err
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
	if ttl != "" {
		_, err := client.UpdateTimeToLive(ctx, &dynamodb.UpdateTimeToLiveInput{
			TableName:               aws.String(name),
			TimeToLiveSpecification: &ddbtypes.TimeToLiveSpecification{AttributeName: aws.String(ttl), Enabled: aws.Bool(true)},
		})
		if err != nil {
			return fmt.Errorf("enable TTL on %s: %w", name, err)
		}
	}
	return nil
}

// TemplateResource returns one resource of the SAM template at path as JSON
// ({"Type": ..., "Properties": ...}), with intrinsic functions resolved by
// goformation. Resources are picked one at a time because goformation's
// typed SAM resources trail SAM itself (FilterCriteria, EnableIamAuthorizer)
// while its CloudFormation resources follow the published specification.
func TemplateResource(path, logicalID string) (json.RawMessage, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read template: %w", err)
	}
	processed, err := intrinsics.ProcessYAML(data, &intrinsics.ProcessorOptions{NoProcess: false})
	if err != nil {
		return nil, fmt.Errorf("process template %s: %w", path, err)
	}
	var doc struct {
		Resources map[string]json.RawMessage
	}
	if err := json.Unmarshal(processed, &doc); err != nil {
		return nil, fmt.Errorf("parse template %s: %w", path, err)
	}
	r, ok := doc.Resources[logicalID]
	if !ok {
		return nil, fmt.Errorf("template %s has no resource %s", path, logicalID)
	}
	return r, nil
}

// Env is a started stack with the certflow tables created and the AWS
// configuration pointing at it: what integration tests and tools need.
type Env struct {
	*Stack
	Tables Tables
	AWS    aws.Config
}

// StartEnv starts a stack with opts, creates the tables from template.yaml
// when DynamoDB Local runs, and loads the AWS configuration. The caller
// closes the Env's Stack.
func StartEnv(ctx context.Context, opts Options) (_ *Env, err error) {
	s, err := Start(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	env := &Env{Stack: s}
	if opts.DynamoDB {
		if env.Tables, err = s.CreateTables(ctx); err != nil {
			return nil, err
		}
	}
	if env.AWS, err = s.AWSConfig(ctx); err != nil {
		return nil, err
	}
	return env, nil
}

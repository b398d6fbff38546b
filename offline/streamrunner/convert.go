package streamrunner

import (
	"fmt"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodbstreams/types"
)

// EventRecord converts a record of the DynamoDB Streams API into the record
// Lambda delivers, with eventSourceARN set to streamARN.
func EventRecord(rec types.Record, streamARN string) (events.DynamoDBEventRecord, error) {
	out := events.DynamoDBEventRecord{
		AWSRegion:      aws.ToString(rec.AwsRegion),
		EventID:        aws.ToString(rec.EventID),
		EventName:      string(rec.EventName),
		EventSource:    aws.ToString(rec.EventSource),
		EventVersion:   aws.ToString(rec.EventVersion),
		EventSourceArn: streamARN,
	}
	if rec.UserIdentity != nil {
		out.UserIdentity = &events.DynamoDBUserIdentity{
			Type:        aws.ToString(rec.UserIdentity.Type),
			PrincipalID: aws.ToString(rec.UserIdentity.PrincipalId),
		}
	}
	if d := rec.Dynamodb; d != nil {
		if d.ApproximateCreationDateTime != nil {
			out.Change.ApproximateCreationDateTime = events.SecondsEpochTime{Time: *d.ApproximateCreationDateTime}
		}
		var err error
		if out.Change.Keys, err = attributeMap(d.Keys); err != nil {
			return out, fmt.Errorf("record %s keys: %w", aws.ToString(d.SequenceNumber), err)
		}
		if out.Change.NewImage, err = attributeMap(d.NewImage); err != nil {
			return out, fmt.Errorf("record %s new image: %w", aws.ToString(d.SequenceNumber), err)
		}
		if out.Change.OldImage, err = attributeMap(d.OldImage); err != nil {
			return out, fmt.Errorf("record %s old image: %w", aws.ToString(d.SequenceNumber), err)
		}
		out.Change.SequenceNumber = aws.ToString(d.SequenceNumber)
		out.Change.SizeBytes = aws.ToInt64(d.SizeBytes)
		out.Change.StreamViewType = string(d.StreamViewType)
	}
	return out, nil
}

func attributeMap(m map[string]types.AttributeValue) (map[string]events.DynamoDBAttributeValue, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]events.DynamoDBAttributeValue, len(m))
	for k, v := range m {
		av, err := attributeValue(v)
		if err != nil {
			return nil, fmt.Errorf("attribute %s: %w", k, err)
		}
		out[k] = av
	}
	return out, nil
}

func attributeValue(v types.AttributeValue) (events.DynamoDBAttributeValue, error) {
	switch v := v.(type) {
	case *types.AttributeValueMemberS:
		return events.NewStringAttribute(v.Value), nil
	case *types.AttributeValueMemberN:
		return events.NewNumberAttribute(v.Value), nil
	case *types.AttributeValueMemberB:
		return events.NewBinaryAttribute(v.Value), nil
	case *types.AttributeValueMemberBOOL:
		return events.NewBooleanAttribute(v.Value), nil
	case *types.AttributeValueMemberNULL:
		return events.NewNullAttribute(), nil
	case *types.AttributeValueMemberSS:
		return events.NewStringSetAttribute(v.Value), nil
	case *types.AttributeValueMemberNS:
		return events.NewNumberSetAttribute(v.Value), nil
	case *types.AttributeValueMemberBS:
		return events.NewBinarySetAttribute(v.Value), nil
	case *types.AttributeValueMemberL:
		l := make([]events.DynamoDBAttributeValue, len(v.Value))
		for i, e := range v.Value {
			av, err := attributeValue(e)
			if err != nil {
				return events.DynamoDBAttributeValue{}, err
			}
			l[i] = av
		}
		return events.NewListAttribute(l), nil
	case *types.AttributeValueMemberM:
		m, err := attributeMap(v.Value)
		if err != nil {
			return events.DynamoDBAttributeValue{}, err
		}
		return events.NewMapAttribute(m), nil
	}
	return events.DynamoDBAttributeValue{}, fmt.Errorf("unsupported attribute value %T", v)
}

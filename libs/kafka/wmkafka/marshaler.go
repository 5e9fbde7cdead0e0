package wmkafka

import (
	"fmt"
	"strconv"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Header and metadata names this package reads and writes.
const (
	// UUIDHeader carries the Watermill message UUID (the same name watermill-kafka uses, so
	// both adapters read each other's records).
	UUIDHeader = "_watermill_message_uuid"
	// CloudEventsIDHeader is the id libs/kafka.Producer writes; it becomes the message UUID
	// of records that have no UUIDHeader.
	CloudEventsIDHeader = events.HeaderID

	// PartitionKeyMetadata, when set on a published message, is its Kafka key.
	PartitionKeyMetadata = "partition_key"

	// Metadata set on every consumed message, as decimal strings (key as raw bytes).
	TopicMetadata     = "kafka_topic"
	PartitionMetadata = "kafka_partition"
	OffsetMetadata    = "kafka_offset"
	KeyMetadata       = "kafka_key"
)

// Marshaler converts between Watermill messages and Kafka records. The Publisher uses
// Marshal, the Subscriber Unmarshal; DefaultMarshaler is used when none is configured.
type Marshaler interface {
	// Marshal returns the record for msg published to topic.
	Marshal(topic string, msg *message.Message) (*kgo.Record, error)
	// Unmarshal returns a new message for a consumed record. It is called again for each
	// redelivery, so it must not keep state between calls.
	Unmarshal(rec *kgo.Record) (*message.Message, error)
}

// KeyFunc picks the Kafka key of a published message. Records with the same key land on
// the same partition and are therefore delivered in publish order.
type KeyFunc func(topic string, msg *message.Message) []byte

// DefaultKey is the key used when DefaultMarshaler.Key is nil: the "partition_key"
// metadata if set, else the message UUID (which spreads messages over partitions and
// gives no cross-message order).
func DefaultKey(_ string, msg *message.Message) []byte {
	if k := msg.Metadata.Get(PartitionKeyMetadata); k != "" {
		return []byte(k)
	}
	return []byte(msg.UUID)
}

// DefaultMarshaler maps payload ↔ value, metadata ↔ headers and the UUID to UUIDHeader.
// Headers written by other producers (libs/kafka.Producer's CloudEvents ce_* headers,
// traceparent) become metadata as they are; the message UUID falls back to ce_id, then to
// "<topic>/<partition>/<offset>" so a redelivered record keeps its UUID.
type DefaultMarshaler struct {
	// Key picks the record key; nil means DefaultKey.
	Key KeyFunc
}

// Marshal implements Marshaler.
func (m DefaultMarshaler) Marshal(topic string, msg *message.Message) (*kgo.Record, error) {
	key := m.Key
	if key == nil {
		key = DefaultKey
	}
	rec := &kgo.Record{Topic: topic, Key: key(topic, msg), Value: msg.Payload}
	rec.Headers = make([]kgo.RecordHeader, 0, len(msg.Metadata)+1)
	rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: UUIDHeader, Value: []byte(msg.UUID)})
	for k, v := range msg.Metadata {
		if k == UUIDHeader {
			continue // the UUID is authoritative; a stale copy in metadata must not shadow it
		}
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: k, Value: []byte(v)})
	}
	return rec, nil
}

// Unmarshal implements Marshaler.
func (DefaultMarshaler) Unmarshal(rec *kgo.Record) (*message.Message, error) {
	var uuid, ceID string
	md := make(message.Metadata, len(rec.Headers)+4)
	for _, h := range rec.Headers {
		switch h.Key {
		case UUIDHeader:
			uuid = string(h.Value)
			continue
		case CloudEventsIDHeader:
			ceID = string(h.Value)
		}
		md[h.Key] = string(h.Value)
	}
	if uuid == "" {
		uuid = ceID
	}
	if uuid == "" {
		uuid = fmt.Sprintf("%s/%d/%d", rec.Topic, rec.Partition, rec.Offset)
	}
	md[TopicMetadata] = rec.Topic
	md[PartitionMetadata] = strconv.FormatInt(int64(rec.Partition), 10)
	md[OffsetMetadata] = strconv.FormatInt(rec.Offset, 10)
	md[KeyMetadata] = string(rec.Key)

	msg := message.NewMessage(uuid, rec.Value)
	msg.Metadata = md
	return msg, nil
}

package wmkafka_test

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"testing"
	"time"

	"github.com/ThreeDotsLabs/watermill/message"
	"github.com/ThreeDotsLabs/watermill/pubsub/tests"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/wmkafka"
	"github.com/twmb/franz-go/pkg/kgo"
)

// testPartitions is the default partition count of topics created in tests: several
// partitions, so the suites exercise parallel partitions and rebalances among members.
const testPartitions = 4

var brokers []string

// testLogger shows the subscribers' warnings (fetch and commit errors) in test output.
var testLogger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))

func TestMain(m *testing.M) {
	broker, err := kafka.StartEmbedded("127.0.0.1:0", "", testPartitions, kafka.Persistence{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	brokers = broker.Addrs()
	code := m.Run()
	broker.Close()
	os.Exit(code)
}

// consumerOptions make group membership changes quick against kfake: members learn of a
// rebalance on their next heartbeat, and an idle fetch returns within FetchMaxWait.
func consumerOptions() []kgo.Opt {
	return []kgo.Opt{
		kgo.HeartbeatInterval(200 * time.Millisecond),
		kgo.SessionTimeout(6 * time.Second),
		kgo.RebalanceTimeout(10 * time.Second),
		kgo.FetchMaxWait(500 * time.Millisecond),
		kgo.ClientID("wmkafka-test"),
	}
}

type pubSubOptions struct {
	group string
	key   wmkafka.KeyFunc
}

func newPubSub(t *testing.T, o pubSubOptions) (message.Publisher, message.Subscriber) {
	t.Helper()
	pub, err := wmkafka.NewPublisher(wmkafka.PublisherConfig{
		Brokers:   brokers,
		Marshaler: wmkafka.DefaultMarshaler{Key: o.key},
	})
	if err != nil {
		t.Fatal(err)
	}
	sub, err := wmkafka.NewSubscriber(wmkafka.SubscriberConfig{
		Brokers:         brokers,
		ConsumerGroup:   o.group,
		NackResendSleep: 10 * time.Millisecond,
		Options:         consumerOptions(),
		Logger:          testLogger,
	})
	if err != nil {
		t.Fatal(err)
	}
	return pub, sub
}

// testGroup is one consumer group per universal test (t is the test's own subtest, the same
// for every constructor call inside it): pub/subs created within a test share the group, as
// the suite expects, and parallel tests do not rebalance each other's group.
func testGroup(t *testing.T) string {
	sum := sha256.Sum256([]byte(t.Name()))
	return "test-" + hex.EncodeToString(sum[:8])
}

// payloadKey keys each message by its payload. TestPublishSubscribeInOrder checks order per
// payload value ("0".."15"), and our guarantee is order per key, so this makes the suite check
// exactly that guarantee; TestNoAck's messages share one payload and so one partition.
func payloadKey(_ string, msg *message.Message) []byte { return msg.Payload }

// features are the honest capabilities: at-least-once (redelivery after a nack, a rebalance
// or a restart), consumer groups, a persistent log. The suite runs at full size (5000-10000
// messages per test, 50 concurrent subscribers); `go test -short` shrinks it.
func features() tests.Features {
	return tests.Features{
		ConsumerGroups:      true,
		ExactlyOnceDelivery: false,
		GuaranteedOrder:     false,
		Persistent:          true,
	}
}

// TestPubSub: default keys (the message UUID) spread messages over all partitions, so there
// is no order among them — exactly watermill-kafka's unordered configuration.
func TestPubSub(t *testing.T) {
	tests.TestPubSub(t, features(),
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, pubSubOptions{group: testGroup(t)})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, pubSubOptions{group: group})
		},
	)
}

// TestPubSubOrdered: messages with the same key come in publish order, also with ten
// subscribers in one group rebalancing partitions among themselves (TestPublishSubscribeInOrder),
// and the next message of a partition waits for the previous one's ack (TestNoAck).
func TestPubSubOrdered(t *testing.T) {
	f := features()
	f.GuaranteedOrder = true
	tests.TestPubSub(t, f,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, pubSubOptions{group: testGroup(t), key: payloadKey})
		},
		func(t *testing.T, group string) (message.Publisher, message.Subscriber) {
			return newPubSub(t, pubSubOptions{group: group, key: payloadKey})
		},
	)
}

// TestPubSubNoGroup: without a group every subscriber reads the topic from the start.
func TestPubSubNoGroup(t *testing.T) {
	f := features()
	f.ConsumerGroups = false
	f.NewSubscriberReceivesOldMessages = true
	f.GuaranteedOrder = true
	tests.TestPubSub(t, f,
		func(t *testing.T) (message.Publisher, message.Subscriber) {
			return newPubSub(t, pubSubOptions{key: payloadKey})
		},
		nil,
	)
}

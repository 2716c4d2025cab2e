package fastjson

import (
	"strings"
	"testing"
)

func TestEachQueueEntry(t *testing.T) {
	body := `{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:12, {"brokerName":"b","queueId":1,"topic":"T"}:7}}`
	got := map[Queue]int64{}
	err := EachQueueEntry([]byte(body), "offsetTable", func(k Queue, value func(any) error) error {
		var v int64
		if err := value(&v); err != nil {
			return err
		}
		got[k] = v
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[Queue]int64{{"b", 0, "T"}: 12, {"b", 1, "T"}: 7}
	if len(got) != len(want) || got[Queue{"b", 0, "T"}] != 12 || got[Queue{"b", 1, "T"}] != 7 {
		t.Fatalf("entries %v, want %v", got, want)
	}
	if err := EachQueueEntry([]byte(`{"other":1}`), "offsetTable", nil); err != nil {
		t.Fatalf("document without the field: %v", err)
	}
}

func TestEachQueueEntryBadInput(t *testing.T) {
	for _, body := range []string{
		`{"offsetTable":[1,2]}`,
		`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:`,
		`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}`,
		`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:1 {"brokerName":"b"}:2}}`,
		`{"offsetTable":{{"brokerName":"b","queueId":"x","topic":"T"}:1}}`,
		`{"offsetTable":{`,
		`{"offsetTable":`,
	} {
		err := EachQueueEntry([]byte(body), "offsetTable", func(_ Queue, value func(any) error) error {
			var v int64
			return value(&v)
		})
		if err == nil || !strings.Contains(err.Error(), "offsetTable") {
			t.Errorf("%s: %v, want an error naming the field", body, err)
		}
	}
}

func FuzzEachQueueEntry(f *testing.F) {
	f.Add([]byte(`{"offsetTable":{{"brokerName":"b","queueId":0,"topic":"T"}:12}}`))
	f.Add([]byte(`{"offsetTable":{{}:{}}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = EachQueueEntry(b, "offsetTable", func(_ Queue, value func(any) error) error {
			var v any
			return value(&v)
		})
	})
}

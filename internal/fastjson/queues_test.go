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

// GetConsumerStatusBody's consumerTable: string keys, each value a map
// keyed by MessageQueue objects, read entry by entry; a value with braces
// and quotes inside strings is skipped whole.
func TestEachObjectEntry(t *testing.T) {
	body := `{"consumerTable":{"c1@1":{{"brokerName":"b","queueId":0,"topic":"T"}:12,{"brokerName":"b","queueId":1,"topic":"T"}:7},` +
		` "odd \"}{\" id" : {} , "n":5,"s":"x}"},"messageQueueTable":{}}`
	got := map[string]map[Queue]int64{}
	var scalars []string
	err := EachObjectEntry([]byte(body), "consumerTable", func(id string, v []byte) error {
		if v[0] != '{' {
			scalars = append(scalars, id+"="+string(v))
			return nil
		}
		m := map[Queue]int64{}
		got[id] = m
		return EachQueueEntryOf(v, func(q Queue, value func(any) error) error {
			var off int64
			err := value(&off)
			m[q] = off
			return err
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["c1@1"][Queue{"b", 0, "T"}] != 12 || got["c1@1"][Queue{"b", 1, "T"}] != 7 ||
		len(got[`odd "}{" id`]) != 0 || strings.Join(scalars, " ") != `n=5 s="x}"` {
		t.Fatalf("entries %v, scalars %v", got, scalars)
	}
	for _, bad := range []string{`{"consumerTable":{"c":{{"brokerName":"b"`, `{"consumerTable":{"c" {}}}`, `{"consumerTable":[]}`,
		`{"consumerTable":{"c":"unterminated}}`} {
		if err := EachObjectEntry([]byte(bad), "consumerTable", func(string, []byte) error { return nil }); err == nil {
			t.Errorf("%s: no error", bad)
		}
	}
}

func FuzzEachObjectEntry(f *testing.F) {
	f.Add([]byte(`{"consumerTable":{"c":{{"brokerName":"b","queueId":0,"topic":"T"}:12}}}`))
	f.Add([]byte(`{"consumerTable":{"c":"}{","d":[1,{"a":"]"}]}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = EachObjectEntry(b, "consumerTable", func(_ string, v []byte) error {
			return EachQueueEntryOf(v, func(_ Queue, value func(any) error) error {
				var x any
				return value(&x)
			})
		})
	})
}

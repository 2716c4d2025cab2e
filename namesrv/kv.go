package namesrv

import (
	"maps"
	"sync"
)

// NamespaceOrderTopicConfig is the key/value namespace whose table a
// REGISTER_BROKER response carries (RocketMQ's ORDER_TOPIC_CONFIG).
const NamespaceOrderTopicConfig = "ORDER_TOPIC_CONFIG"

// kvStore is the name server's key/value configuration (RocketMQ's
// KVConfigManager), kept in memory only.
type kvStore struct {
	mu    sync.RWMutex
	table map[string]map[string]string // namespace → key → value
}

func newKVStore() *kvStore { return &kvStore{table: map[string]map[string]string{}} }

func (s *kvStore) put(ns, key, value string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.table[ns] == nil {
		s.table[ns] = map[string]string{}
	}
	s.table[ns][key] = value
}

func (s *kvStore) get(ns, key string) (string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	v, ok := s.table[ns][key]
	return v, ok
}

func (s *kvStore) remove(ns, key string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.table[ns], key)
	if len(s.table[ns]) == 0 {
		delete(s.table, ns)
	}
}

// list returns a copy of namespace ns, or false when it is empty.
func (s *kvStore) list(ns string) (map[string]string, bool) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	t, ok := s.table[ns]
	return maps.Clone(t), ok
}

package remoting

import (
	"fmt"
	"sync/atomic"
)

// Flag bits of Command.Flag (RemotingCommand RPC_TYPE and RPC_ONEWAY).
const (
	// FlagResponse (bit 0) marks a response.
	FlagResponse int32 = 1 << 0
	// FlagOneway (bit 1) marks a request that gets no response.
	FlagOneway int32 = 1 << 1
)

// DefaultVersion is the Version put on commands this package creates: 317,
// MQVersion.Version.V4_5_2_SNAPSHOT's ordinal, which is what the official Go
// client v2.1.2 sends. Java clients record a broker's heartbeat-response
// version and refuse SQL92/class filters below V4_1_0_SNAPSHOT; 317 is above.
const DefaultVersion int16 = 317

// SerializeType is a header encoding: the high byte of a frame's
// header-length word.
type SerializeType byte

const (
	// SerializeJSON is a JSON object header (RemotingSerializable), the
	// default of both official clients.
	SerializeJSON SerializeType = 0
	// SerializeRocketMQ is RocketMQ's binary header (RocketMQSerializable).
	SerializeRocketMQ SerializeType = 1
)

// String returns RocketMQ's name for the encoding: JSON or ROCKETMQ.
func (s SerializeType) String() string {
	switch s {
	case SerializeJSON:
		return "JSON"
	case SerializeRocketMQ:
		return "ROCKETMQ"
	}
	return fmt.Sprintf("SerializeType(%d)", byte(s))
}

// LanguageCode says which client implementation sent a command. The binary
// header carries the byte; the JSON header carries the name.
type LanguageCode byte

// RocketMQ's LanguageCode enum; the byte is the enum's code.
const (
	LanguageJava   LanguageCode = 0
	LanguageCPP    LanguageCode = 1
	LanguageDotNet LanguageCode = 2
	LanguagePython LanguageCode = 3
	LanguageDelphi LanguageCode = 4
	LanguageErlang LanguageCode = 5
	LanguageRuby   LanguageCode = 6
	LanguageOther  LanguageCode = 7
	LanguageHTTP   LanguageCode = 8
	LanguageGo     LanguageCode = 9
	LanguagePHP    LanguageCode = 10
	LanguageOMS    LanguageCode = 11
	LanguageRust   LanguageCode = 12
	LanguageNodeJS LanguageCode = 13
)

var languageNames = [...]string{
	"JAVA", "CPP", "DOTNET", "PYTHON", "DELPHI", "ERLANG", "RUBY",
	"OTHER", "HTTP", "GO", "PHP", "OMS", "RUST", "NODE_JS",
}

// String returns the JSON name ("JAVA", "GO", ...), or "" for a code
// RocketMQ does not define.
func (l LanguageCode) String() string {
	if int(l) < len(languageNames) {
		return languageNames[l]
	}
	return ""
}

// ParseLanguage returns the code for a JSON language name. Unknown names
// report false.
func ParseLanguage(name string) (LanguageCode, bool) {
	for i, n := range languageNames {
		if n == name {
			return LanguageCode(i), true
		}
	}
	return 0, false
}

// Command is one remoting request or response (RocketMQ's RemotingCommand).
type Command struct {
	// Code is the request code for a request, the response code for a response.
	Code int16
	// Language is the sender's implementation language.
	Language LanguageCode
	// Version is the sender's MQVersion ordinal.
	Version int16
	// Opaque matches a response to its request.
	Opaque int32
	// Flag holds FlagResponse and FlagOneway.
	Flag int32
	// Remark is free text, usually an error message on a response.
	Remark string
	// ExtFields is the custom header: request and response fields by name.
	ExtFields map[string]string
	// Body is the payload (message bytes, JSON documents, ...).
	Body []byte
	// SerializeType is the header encoding the command arrived in, or is to
	// be sent in.
	SerializeType SerializeType
}

// IsResponse reports whether the command is a response.
func (c *Command) IsResponse() bool { return c.Flag&FlagResponse != 0 }

// IsOneway reports whether the command is a request that wants no response.
func (c *Command) IsOneway() bool { return c.Flag&FlagOneway != 0 }

// Ext returns ext field key, or "" when it or the map is absent.
func (c *Command) Ext(key string) string { return c.ExtFields[key] }

// String summarises the command for logs; the body is given by length only.
func (c *Command) String() string {
	kind := "request"
	if c.IsResponse() {
		kind = "response"
	} else if c.IsOneway() {
		kind = "oneway"
	}
	return fmt.Sprintf("%s code=%d opaque=%d lang=%s version=%d remark=%q ext=%v body=%dB %s",
		kind, c.Code, c.Opaque, c.Language, c.Version, c.Remark, c.ExtFields, len(c.Body), c.SerializeType)
}

var lastOpaque atomic.Int32

// nextOpaque returns a process-wide request id, as both official clients
// keep one counter for all connections.
func nextOpaque() int32 { return lastOpaque.Add(1) }

// NewRequest returns a JSON-encoded request with a fresh opaque, language
// GO and [DefaultVersion]. ext becomes ExtFields as given (not copied);
// nil gives an empty map.
func NewRequest(code int16, ext map[string]string) *Command {
	if ext == nil {
		ext = map[string]string{}
	}
	return &Command{
		Code:      code,
		Language:  LanguageGo,
		Version:   DefaultVersion,
		Opaque:    nextOpaque(),
		ExtFields: ext,
	}
}

// NewResponse returns a response to req: req's opaque and header encoding,
// the response flag, the given code and remark, and an empty ExtFields.
func NewResponse(req *Command, code int16, remark string) *Command {
	return &Command{
		Code:          code,
		Language:      LanguageGo,
		Version:       DefaultVersion,
		Opaque:        req.Opaque,
		Flag:          FlagResponse,
		Remark:        remark,
		ExtFields:     map[string]string{},
		SerializeType: req.SerializeType,
	}
}

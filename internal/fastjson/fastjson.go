package fastjson

// QuoteNumericKeys makes the JSON Java's fastjson writes for maps with
// integer keys ({0:"127.0.0.1:10911"}) valid by quoting those keys. Valid
// JSON passes unchanged.
func QuoteNumericKeys(b []byte) []byte {
	out := make([]byte, 0, len(b)+8)
	var stack []byte // open containers: '{' or '['
	inStr, esc, keyPos := false, false, false
	for i := 0; i < len(b); i++ {
		ch := b[i]
		if inStr {
			switch {
			case esc:
				esc = false
			case ch == '\\':
				esc = true
			case ch == '"':
				inStr = false
			}
			out = append(out, ch)
			continue
		}
		switch {
		case ch == '"':
			inStr, keyPos = true, false
		case ch == '{' || ch == '[':
			stack = append(stack, ch)
			keyPos = ch == '{'
		case ch == '}' || ch == ']':
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			keyPos = false
		case ch == ',':
			keyPos = len(stack) > 0 && stack[len(stack)-1] == '{'
		case ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r':
		case keyPos && (ch == '-' || ch >= '0' && ch <= '9'):
			j := i + 1
			for j < len(b) && b[j] >= '0' && b[j] <= '9' {
				j++
			}
			out = append(out, '"')
			out = append(out, b[i:j]...)
			out = append(out, '"')
			i, keyPos = j-1, false
			continue
		default:
			keyPos = false
		}
		out = append(out, ch)
	}
	return out
}

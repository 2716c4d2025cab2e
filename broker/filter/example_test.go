package filter_test

import (
	"fmt"

	"github.com/halfbackmq/halfback/broker/filter"
)

func Example() {
	e, err := filter.Compile("region = 'eu' AND price BETWEEN 10 AND 20")
	if err != nil {
		panic(err)
	}
	props := map[string]string{"region": "eu", "price": "15"}
	fmt.Println(e.Match(func(name string) (string, bool) {
		v, ok := props[name]
		return v, ok
	}))

	_, err = filter.Compile("price > 'ten'")
	fmt.Println(err)
	// Output:
	// true
	// filter: syntax error: value cannot be compared with >, >=, <, <= or BETWEEN at offset 8
}

package fernetstore

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// BenchmarkResolveByID compares resolving a row by a UUID string id (the
// Python service's table) with resolving it by an integer id (keyward's
// default table), on each database, in the same run: the same number of
// rows, the same value, the row in the middle.
//
//	go test ./fernetstore -run '^$' -bench 'ResolveByID' -count 10 | benchstat -col /id -
func BenchmarkResolveByID(b *testing.B) {
	for _, d := range allDialects {
		for _, idType := range []IDType{IDInteger, IDText} {
			b.Run(fmt.Sprintf("db=%s/id=%s", d, idType), func(b *testing.B) {
				db := openTestDB(b, d)
				s := newTestStore(b, db, mustRing(b, benchKey1), &Options{IDType: idType})
				ctx := context.Background()
				var id string
				for i := range 1000 {
					got, err := s.Put(ctx, "bench", "p", string(value100()), time.Time{})
					if err != nil {
						b.Fatal(err)
					}
					if i == 500 {
						id = got
					}
				}
				b.ReportAllocs()
				for b.Loop() {
					sec, err := s.Resolve(ctx, id)
					if err != nil {
						b.Fatal(err)
					}
					sink = []byte(sec.Reveal()[:1])
				}
			})
		}
	}
}

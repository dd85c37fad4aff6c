// A Go program exercising the runtime on threads: goroutines over GOMAXPROCS(2) OS threads, channels,
// the garbage collector, timers, asynchronous preemption (SIGURG by tgkill), signals (os/signal) and a
// net/http server with its client on loopback. Prints only deterministic results.
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

func fib(n int) int {
	if n < 2 {
		return n
	}
	return fib(n-1) + fib(n-2)
}

func workers() {
	ch := make(chan int, 16)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			var keep [][]byte
			for j := 0; j < 2000; j++ {
				keep = append(keep, make([]byte, 1024))
			}
			ch <- fib(20+i%4) + len(keep)
		}(i)
	}
	go func() { wg.Wait(); close(ch) }()
	total := 0
	for v := range ch {
		total += v
	}
	runtime.GC()
	fmt.Println("workers total", total, "procs", runtime.GOMAXPROCS(0))
}

func mutexCounter() {
	var mu sync.Mutex
	var wg sync.WaitGroup
	counter := 0
	var atomicCounter int64
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20000; j++ {
				mu.Lock()
				counter++
				mu.Unlock()
				atomic.AddInt64(&atomicCounter, 1)
			}
		}()
	}
	wg.Wait()
	fmt.Println("mutex counter", counter, "atomic", atomicCounter)
}

// preemption: a goroutine spinning without function calls can only be preempted asynchronously
// (the runtime sends SIGURG to its thread with tgkill); the main goroutine must still get to run.
func preemption() {
	var stop int32
	runtime.GOMAXPROCS(1)
	go func() {
		for atomic.LoadInt32(&stop) == 0 {
		}
	}()
	time.Sleep(50 * time.Millisecond) // needs the spinning goroutine preempted to wake up
	atomic.StoreInt32(&stop, 1)
	runtime.GOMAXPROCS(2)
	fmt.Println("preempted spinning goroutine")
}

func timers() {
	start := time.Now()
	ticker := time.NewTicker(10 * time.Millisecond)
	n := 0
	for range ticker.C {
		n++
		if n == 5 {
			break
		}
	}
	ticker.Stop()
	select {
	case <-time.After(20 * time.Millisecond):
	}
	fmt.Println("ticks", n, "elapsed>=70ms", time.Since(start) >= 70*time.Millisecond)
}

func signals() {
	c := make(chan os.Signal, 1)
	signal.Notify(c, syscall.SIGUSR1)
	syscall.Kill(os.Getpid(), syscall.SIGUSR1)
	select {
	case s := <-c:
		fmt.Println("signal", s)
	case <-time.After(5 * time.Second):
		fmt.Println("signal lost")
	}
	signal.Stop(c)
}

func httpServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return
	}
	var served int64
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		atomic.AddInt64(&served, 1)
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	go srv.Serve(ln)
	var wg sync.WaitGroup
	results := make([]string, 6)
	for i := range results {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			resp, err := http.Get(fmt.Sprintf("http://%s/r%d", ln.Addr(), i))
			if err != nil {
				results[i] = "error"
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			results[i] = string(body)
		}(i)
	}
	wg.Wait()
	srv.Close()
	fmt.Println("http", results, "served", atomic.LoadInt64(&served))
}

func main() {
	runtime.GOMAXPROCS(2)
	workers()
	mutexCounter()
	preemption()
	timers()
	signals()
	httpServer()
}

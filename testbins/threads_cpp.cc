// threads_cpp: C++ threads — std::thread, std::async/std::future, std::atomic, std::mutex with
// std::condition_variable, thread_local, and an OpenMP parallel-for reduction on 2 threads.
//
// Built by tests/test_threads.py with g++ -static -O2 -pthread -fopenmp. Every line is computed after the threads
// finished, so the output does not depend on scheduling; "done" ends it.
#include <atomic>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <future>
#include <mutex>
#include <numeric>
#include <thread>
#include <vector>
#ifdef _OPENMP
#include <omp.h>
#endif

static void threads_summing_ranges()
{
    std::vector<long> v(800000);
    std::iota(v.begin(), v.end(), 1);
    std::vector<long> partial(8);
    std::vector<std::thread> workers;
    size_t chunk = v.size() / 8;
    for (int i = 0; i < 8; i++)
        workers.emplace_back([&, i] {
            partial[i] = std::accumulate(v.begin() + i * chunk, v.begin() + (i + 1) * chunk, 0L);
        });
    for (auto &t : workers)
        t.join();
    std::printf("std::thread: 8 ranges sum %ld (expected %ld)\n", std::accumulate(partial.begin(), partial.end(), 0L),
                (long)v.size() * ((long)v.size() + 1) / 2);
}

static long fib(int n) { return n < 2 ? n : fib(n - 1) + fib(n - 2); }

static void async_and_futures()
{
    std::vector<std::future<long>> futures;
    for (int n = 20; n < 26; n++)
        futures.push_back(std::async(std::launch::async, fib, n));
    long sum = 0;
    for (auto &f : futures)
        sum += f.get();
    std::printf("std::async: fib(20..25) sum %ld\n", sum);

    std::promise<int> promise;
    std::future<int> answer = promise.get_future();
    std::thread setter([&] { promise.set_value(42); });
    std::printf("std::promise: %d\n", answer.get());
    setter.join();

    auto failing = std::async(std::launch::async, []() -> int { throw std::runtime_error("thrown in a thread"); });
    try {
        failing.get();
        std::printf("std::async exception: not propagated\n");
    } catch (const std::exception &e) {
        std::printf("std::async exception: %s\n", e.what());
    }
}

static void atomics()
{
    std::atomic<long> counter{0};
    std::atomic<int> max_seen{0};
    std::vector<std::thread> workers;
    for (int i = 0; i < 4; i++)
        workers.emplace_back([&, i] {
            for (int k = 0; k < 100000; k++)
                counter.fetch_add(1, std::memory_order_relaxed);
            int v = max_seen.load();
            while (v < i && !max_seen.compare_exchange_weak(v, i))
                ;
        });
    for (auto &t : workers)
        t.join();
    std::printf("std::atomic: counter %ld, max %d, lock free %d\n", counter.load(), max_seen.load(),
                (int)counter.is_lock_free());
}

static void mutex_and_condition_variable()
{
    std::mutex m;
    std::condition_variable cv;
    std::deque<int> queue;
    bool finished = false;
    long consumed = 0, count = 0;
    std::thread consumer([&] {
        std::unique_lock<std::mutex> lock(m);
        for (;;) {
            cv.wait(lock, [&] { return !queue.empty() || finished; });
            while (!queue.empty()) {
                consumed += queue.front();
                count++;
                queue.pop_front();
            }
            if (finished)
                return;
        }
    });
    std::vector<std::thread> producers;
    for (int p = 0; p < 3; p++)
        producers.emplace_back([&, p] {
            for (int i = 1; i <= 1000; i++) {
                std::lock_guard<std::mutex> lock(m);
                queue.push_back(p * 1000 + i);
                cv.notify_one();
            }
        });
    for (auto &t : producers)
        t.join();
    {
        std::lock_guard<std::mutex> lock(m);
        finished = true;
    }
    cv.notify_all();
    consumer.join();
    std::printf("std::condition_variable: consumed %ld items, sum %ld\n", count, consumed);
}

static thread_local int tl_value = 7;

static void thread_locals()
{
    int seen[4];
    std::vector<std::thread> workers;
    tl_value = 100;
    for (int i = 0; i < 4; i++)
        workers.emplace_back([&, i] {
            seen[i] = tl_value;
            tl_value = i;
            std::this_thread::yield();
            seen[i] += tl_value == i ? 1000 : 0;
        });
    for (auto &t : workers)
        t.join();
    std::printf("thread_local: %d %d %d %d, main %d\n", seen[0], seen[1], seen[2], seen[3], tl_value);
    std::thread::id other;
    std::thread t([&] { other = std::this_thread::get_id(); });
    std::thread::id handle_id = t.get_id();
    t.join();
    std::printf("thread ids: another thread's differs %d, its handle agrees %d, joinable after join %d\n",
                (int)(other != std::this_thread::get_id()), (int)(other == handle_id), (int)t.joinable());
}

static void openmp()
{
#ifdef _OPENMP
    omp_set_num_threads(2);
    std::vector<double> x(1000000);
    for (size_t i = 0; i < x.size(); i++)
        x[i] = (double)(i % 1000);            // integral values: the sum is exact in any order
    double sum = 0;
    int threads = 0;
#pragma omp parallel for reduction(+:sum)
    for (long i = 0; i < (long)x.size(); i++)
        sum += x[i];
#pragma omp parallel
    {
#pragma omp single
        threads = omp_get_num_threads();
    }
    long isum = 0;
#pragma omp parallel for reduction(+:isum) schedule(dynamic, 1000)
    for (long i = 0; i < 1000000; i++)
        isum += i;
    std::printf("openmp: %d threads, reduction %.0f, dynamic schedule %ld\n", threads, sum, isum);
#else
    std::printf("openmp: not compiled in\n");
#endif
}

int main()
{
    std::setvbuf(stdout, nullptr, _IOLBF, 0);
    threads_summing_ranges();
    async_and_futures();
    atomics();
    mutex_and_condition_variable();
    thread_locals();
    openmp();
    std::printf("done\n");
    return 0;
}

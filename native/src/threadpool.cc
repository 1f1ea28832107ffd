#include "threadpool.h"

#include <cstdlib>
#include <memory>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace attn {

// Waking a sleeping thread (futex) costs tens of microseconds on a virtual
// machine — as much as a decode step's small matrix products. So a thread
// that just finished a job, and the caller waiting for workers, first spin
// for a few tens of microseconds before sleeping: back-to-back jobs (a
// decode step runs dozens) then start without a wake-up.
static constexpr int kSpin = 2000;

static inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}

ThreadPool::ThreadPool(int threads) {
  for (int i = 1; i < threads; i++) workers_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::drain(int thread) {
  for (int t = next_.fetch_add(1); t < tasks_; t = next_.fetch_add(1)) {
    (*job_)(t, thread);
    if (pending_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      std::lock_guard<std::mutex> lock(mu_);
      done_.notify_one();
    }
  }
}

// The caller waits for the job's tasks, not for the workers: a worker that wakes after
// the caller (and any others) took every task does not join at all. On a virtual
// machine a sleeping thread's wake-up can take longer than a whole job (a fused
// decode layer: ~0.1 ms), and waiting for it made two threads slower than one.
void ThreadPool::run(int tasks, const std::function<void(int, int)>& fn) {
  if (tasks <= 0) return;
  if (workers_.empty() || tasks == 1) {
    for (int t = 0; t < tasks; t++) fn(t, 0);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    job_ = &fn;
    tasks_ = tasks;
    next_.store(0);
    pending_.store(tasks);
    generation_++;
  }
  wake_.notify_all();
  drain(0);
  for (int i = 0; i < kSpin && pending_.load(std::memory_order_acquire) != 0; i++) cpu_relax();
  {
    std::unique_lock<std::mutex> lock(mu_);
    done_.wait(lock, [this] { return pending_.load() == 0; });
    job_ = nullptr;  // workers that wake from now on do not join this job
  }
  // Workers that joined leave drain at once (every task is taken); then the next job may reset the counters.
  while (active_.load(std::memory_order_acquire) != 0) cpu_relax();
}

void ThreadPool::worker(int id) {
  long seen = 0;
  for (;;) {
    for (int i = 0; i < kSpin && generation_.load(std::memory_order_acquire) == seen && !stop_.load(std::memory_order_relaxed); i++) cpu_relax();
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      if (!job_) continue;  // that job is over
      active_.fetch_add(1);
    }
    drain(id);
    active_.fetch_sub(1, std::memory_order_release);
  }
}

int default_threads() {
  if (const char* env = std::getenv("ATTN_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc > 0 ? static_cast<int>(hc) : 1;
}

static std::unique_ptr<ThreadPool> g_pool;

ThreadPool& pool() {
  if (!g_pool) g_pool = std::make_unique<ThreadPool>(default_threads());
  return *g_pool;
}

void set_threads(int n) {
  if (n < 1) n = 1;
  if (g_pool && g_pool->size() == n) return;
  g_pool.reset();
  g_pool = std::make_unique<ThreadPool>(n);
}

}  // namespace attn

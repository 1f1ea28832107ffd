// A persistent pool of worker threads. Creating threads per call would cost
// more than the small kernels of a training step, so workers are started once
// and wait for work; the calling thread takes part in every job.
#pragma once
#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace attn {

class ThreadPool {
 public:
  explicit ThreadPool(int threads);
  ~ThreadPool();
  int size() const { return static_cast<int>(workers_.size()) + 1; }
  // Run fn(task, thread) for task = 0..tasks-1, spread over all threads; returns when all are done.
  void run(int tasks, const std::function<void(int, int)>& fn);

 private:
  void worker(int id);
  void drain(int thread);

  std::vector<std::thread> workers_;
  std::mutex mu_;
  std::condition_variable wake_, done_;
  const std::function<void(int, int)>* job_ = nullptr;
  int tasks_ = 0;
  std::atomic<int> next_{0};
  std::atomic<int> pending_{0};  // tasks of the current job not yet finished
  std::atomic<int> active_{0};   // workers inside the current job's drain
  std::atomic<long> generation_{0};
  std::atomic<bool> stop_{false};
};

// The process-wide pool, sized by set_threads() (default: ATTN_THREADS or the core count).
ThreadPool& pool();
void set_threads(int n);
int default_threads();

}  // namespace attn

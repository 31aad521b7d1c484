// SPDX-License-Identifier: MIT
// A minimal intrusive doubly linked list. The hot path keeps preallocated
// objects (clones, originals) on lists without allocating.
#pragma once

#include <cassert>
#include <cstddef>

namespace ubdm {

struct ListHook {
  ListHook* prev = nullptr;
  ListHook* next = nullptr;
  void* owner = nullptr;  // the object holding this hook; set on insert
  bool linked() const { return next != nullptr; }
};

// T must have a public `ListHook Member`. An object is on at most one list per hook.
template <typename T, ListHook T::*Member>
class IntrusiveList {
 public:
  IntrusiveList() { head_.prev = head_.next = &head_; }
  IntrusiveList(const IntrusiveList&) = delete;
  IntrusiveList& operator=(const IntrusiveList&) = delete;

  bool empty() const { return head_.next == &head_; }
  std::size_t size() const { return size_; }

  void push_back(T& item) { insert_before(head_, item); }
  void push_front(T& item) { insert_before(*head_.next, item); }
  // Insert `item` right after `pos`, which must be on this list.
  void insert_after(T& pos, T& item) { insert_before(*(pos.*Member).next, item); }

  const T* first() const { return empty() ? nullptr : static_cast<const T*>(head_.next->owner); }
  T& front() {
    assert(!empty());
    return *owner(head_.next);
  }
  T* pop_front() {
    if (empty()) {
      return nullptr;
    }
    T* item = owner(head_.next);
    remove(*item);
    return item;
  }
  void remove(T& item) {
    ListHook& h = item.*Member;
    assert(h.linked());
    h.prev->next = h.next;
    h.next->prev = h.prev;
    h.prev = h.next = nullptr;
    --size_;
  }
  // Move every item of `other` to the end of this list, keeping their order.
  void splice_back(IntrusiveList& other) {
    while (T* item = other.pop_front()) {
      push_back(*item);
    }
  }
  // Visit items in order; `fn` may not unlink items other than the one it is given.
  template <typename Fn>
  void for_each(Fn&& fn) {
    for (ListHook* h = head_.next; h != &head_;) {
      ListHook* next = h->next;
      fn(*owner(h));
      h = next;
    }
  }
  // First item, or the item after `item`; nullptr at the end.
  T* first() { return empty() ? nullptr : owner(head_.next); }
  T* next(T& item) {
    ListHook* n = (item.*Member).next;
    return n == &head_ ? nullptr : owner(n);
  }

 private:
  void insert_before(ListHook& pos, T& item) {
    ListHook& h = item.*Member;
    assert(!h.linked());
    h.owner = &item;
    h.next = &pos;
    h.prev = pos.prev;
    pos.prev->next = &h;
    pos.prev = &h;
    ++size_;
  }
  // The hook records its object, which avoids offsetof tricks on non-standard-layout types.
  static T* owner(ListHook* h) { return static_cast<T*>(h->owner); }

  ListHook head_;
  std::size_t size_ = 0;
};

}  // namespace ubdm

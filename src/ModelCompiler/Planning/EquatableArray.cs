using System;
using System.Collections;
using System.Collections.Generic;
using System.Linq;

namespace ModelCompiler.Planning
{
    /// <summary>
    /// An immutable array that compares by its items, so records holding one keep value equality (the generator's caching
    /// depends on it). Wraps a private copy of the items.
    /// </summary>
    /// <typeparam name="T">The item type, itself value-equatable.</typeparam>
    public readonly struct EquatableArray<T> : IEquatable<EquatableArray<T>>, IReadOnlyList<T>
        where T : IEquatable<T>
    {
        private readonly T[]? _items;

        /// <summary>Copies <paramref name="items"/>.</summary>
        public EquatableArray(IEnumerable<T> items) => _items = items.ToArray();

        /// <summary>An empty array.</summary>
        public static EquatableArray<T> Empty => default;

        /// <inheritdoc/>
        public int Count => _items?.Length ?? 0;

        /// <inheritdoc/>
        public T this[int index] => (_items ?? Array.Empty<T>())[index];

        /// <inheritdoc/>
        public bool Equals(EquatableArray<T> other) => (_items ?? Array.Empty<T>()).SequenceEqual(other._items ?? Array.Empty<T>());

        /// <inheritdoc/>
        public override bool Equals(object? obj) => obj is EquatableArray<T> other && Equals(other);

        /// <inheritdoc/>
        public override int GetHashCode()
        {
            unchecked
            {
                int hash = 17;
                foreach (var item in _items ?? Array.Empty<T>()) hash = (hash * 31) + (item?.GetHashCode() ?? 0);
                return hash;
            }
        }

        /// <summary>Equality.</summary>
        public static bool operator ==(EquatableArray<T> left, EquatableArray<T> right) => left.Equals(right);

        /// <summary>Inequality.</summary>
        public static bool operator !=(EquatableArray<T> left, EquatableArray<T> right) => !left.Equals(right);

        /// <inheritdoc/>
        public IEnumerator<T> GetEnumerator() => ((IEnumerable<T>)(_items ?? Array.Empty<T>())).GetEnumerator();

        IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
    }

    /// <summary>Helpers for <see cref="EquatableArray{T}"/>.</summary>
    public static class EquatableArray
    {
        /// <summary>Copies <paramref name="items"/> into an <see cref="EquatableArray{T}"/>.</summary>
        public static EquatableArray<T> ToEquatableArray<T>(this IEnumerable<T> items)
            where T : IEquatable<T> => new(items);
    }
}
